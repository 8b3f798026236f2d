"""Let nbval apply the sanitize file wherever pytest is started from, compare the
cells tagged ``nbval-tolerance`` number by number (``nbval_tolerance.py``), run the
quick version of the longest experiments (``MNIST_BOOK_QUICK=1``: chapters 3, 6 and
11), and keep the kernels' OpenMP threads from spinning (``OMP_WAIT_POLICY=PASSIVE``).
The pytest-xdist groups are in the root conftest.py."""

import os
from pathlib import Path

import nbformat
from nbval.plugin import IPyNbCell, coalesce_streams
from nbval_tolerance import (
    QUICK_OUTPUTS,
    SKIP,
    TAG,
    mask_outputs,
    parse_tolerance,
    quick_run,
    reconcile,
    reference_outputs,
)

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


_exact_compare = IPyNbCell.compare_outputs


def compare_outputs(self, test, ref, skip_compare=None):
    """nbval's comparison, against the quick run's outputs in a quick run where the
    cell has them, without what the cell's ``nbval_skip`` patterns match, and with
    the numbers of a cell tagged ``nbval-tolerance`` first matched against the stored
    ones within the cell's ``tolerance``."""
    if quick_run() and QUICK_OUTPUTS in self.cell.metadata:
        ref = coalesce_streams([nbformat.from_dict(o) for o in reference_outputs(self.cell)])
    if SKIP in self.cell.metadata:  # timings beside what is compared
        test = mask_outputs(test, self.cell.metadata[SKIP])
        ref = mask_outputs(ref, self.cell.metadata[SKIP])
    if TAG not in self.cell.metadata.get("tags", []):
        return _exact_compare(self, test, ref, skip_compare)
    try:
        bounds = parse_tolerance(self.cell.metadata.get("tolerance"))
    except ValueError as error:
        self.comparison_traceback = [f"bad tolerance metadata: {error}"]
        return False
    test, problems = reconcile(test, ref, bounds)
    if problems:
        self.comparison_traceback = [
            f"{len(problems)} number(s) outside the cell's tolerance {bounds}:"
        ] + [f"  {where}: {mismatch}" for where, mismatch in problems]
        return False
    return _exact_compare(self, test, ref, skip_compare)


IPyNbCell.compare_outputs = compare_outputs
