"""pytest-xdist groups for the test command (``-n 2 --dist loadgroup`` in
pyproject.toml), for the notebooks and the tests alike: every file's items run in one
worker, in order, and the files of :data:`GROUPS` share a worker with each other."""

import os
from pathlib import Path

import pytest

# The test command's two processes share the cores, and every kernel, torchrun worker
# and test uses PyTorch's threads on top: with OpenMP's default, a thread that waits
# spins on a core another process needs. Waiting passively changes no result, only
# less time is lost (the troubleshooting page measures it). A value already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: Files that share a group. The chapters that train or load chapter 4's final model
#: run in order, then the tests that load or copy it; the book is built once for its tests.
GROUPS = {
    "notebooks/04_faster.ipynb": "final-model",
    "notebooks/05_testing.ipynb": "final-model",
    "notebooks/10_own_digits.ipynb": "final-model",
    "tests/test_digits.py": "final-model",
    "tests/test_notebooks_alone.py": "final-model",
    "tests/test_book.py": "book",
    "tests/test_browser.py": "book",
    "tests/test_draw_page.py": "book",
}

ROOT = Path(__file__).resolve().parent


def pytest_itemcollected(item):
    path = Path(str(item.fspath)).resolve()
    if path.is_relative_to(ROOT):
        name = path.relative_to(ROOT).as_posix()
        item.add_marker(pytest.mark.xdist_group(GROUPS.get(name, name)))
