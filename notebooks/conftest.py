"""Let nbval apply the sanitize file wherever pytest is started from, and run the
chapters of "Going further" in their reduced form (``MNIST_BOOK_QUICK=1``)."""

import os
from pathlib import Path

# The kernels nbval starts inherit this: the long chapters run a reduced version
# whose accuracy floors are still asserted. Set MNIST_BOOK_QUICK=0 to run them in full.
os.environ.setdefault("MNIST_BOOK_QUICK", "1")

SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")


def pytest_configure(config):
    if not getattr(config.option, "nbval_sanitize_with", None):
        config.option.nbval_sanitize_with = str(SANITIZE_FILE)
