"""Let nbval apply the sanitize file wherever pytest is started from, run the quick
version of the longest experiments (``MNIST_BOOK_QUICK=1``: chapters 3, 6 and 11),
keep the kernels' OpenMP threads from spinning (``OMP_WAIT_POLICY=PASSIVE``), and
put each notebook in one pytest-xdist group."""

import os
from pathlib import Path

import pytest

# The kernels nbval starts inherit this: the longest experiments run a reduced
# version whose accuracy floors are still asserted. Set MNIST_BOOK_QUICK=0 to run them in full.
os.environ.setdefault("MNIST_BOOK_QUICK", "1")

# PyTorch's OpenMP threads spin while they wait for work. When other processes share
# the cores, the spinning threads and the others take turns and small-batch training
# slows down ten times or more; passive waiting gives the cores back at once (see the
# troubleshooting page). The kernels nbval starts inherit this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")


def pytest_configure(config):
    if not getattr(config.option, "nbval_sanitize_with", None):
        config.option.nbval_sanitize_with = str(SANITIZE_FILE)


#: Chapters that train or load chapter 4's final model: they run in order, in one
#: pytest-xdist worker, with the tests that load it (tests/conftest.py).
FINAL_MODEL_GROUP = "final-model"
FINAL_MODEL_CHAPTERS = {"04_faster.ipynb", "05_testing.ipynb", "10_own_digits.ipynb"}


def pytest_itemcollected(item):
    """With ``-n 2 --dist loadgroup`` (pyproject.toml) each notebook's cells stay in
    one worker, in order, and the final model's chapters share a worker."""
    path = Path(str(item.fspath))
    if path.parent == Path(__file__).parent and path.suffix == ".ipynb":
        group = FINAL_MODEL_GROUP if path.name in FINAL_MODEL_CHAPTERS else path.stem
        item.add_marker(pytest.mark.xdist_group(group))
