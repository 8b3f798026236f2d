"""Re-execute notebooks in place so their stored outputs are current.

    python scripts/refresh_notebooks.py                 # every chapter
    python scripts/refresh_notebooks.py notebooks/03_training.ipynb
    python scripts/refresh_notebooks.py --no-execute    # only normalise the metadata

Each notebook runs top to bottom in a fresh kernel from the notebooks/ folder, as
nbval runs it, and is saved with its outputs and execution counts. The time each
one took is printed.

Stored timings must come from a quiet machine, and the refresh proves it. Before and
after each chapter it times a calibration workload (a 1024 x 1024 float32 matrix
product on all of PyTorch's threads, so that a busy core slows it,
``torch.utils.benchmark``'s median, in three fresh processes, whose median counts) and compares it
with the machine's own best: the best of this run and of the earlier runs on the
same processor, thread count and PyTorch release recorded in
``benchmarks/results/calibration.json``. A chapter whose calibration before or after
fell more than ``--max-slowdown`` (default 15%) below that best is not stored: it is
run again (``--retries``), and if the machine stays busy the script says so and exits
non-zero. Each stored chapter gets a last line, written from the machine it ran on,
that says when and where its outputs were made (:func:`provenance`), and the figures
the chapters time are collected into ``notebooks/stored_figures.json`` and checked
against each other (``scripts/stored_figures.py``).

The stored outputs are full runs (``MNIST_BOOK_QUICK=0``). A chapter with a quick
run (chapters 3, 6, 11 and 12) is then run once more as the test command runs it
(``MNIST_BOOK_QUICK=1``), and every cell whose text output differs keeps the quick
run's in its metadata (``quick_outputs``), which nbval compares in the quick run
(``notebooks/nbval_tolerance.py``). ``--quick-only`` redoes just that step.

Before saving, the cell metadata is normalised (also with ``--no-execute``, which
runs nothing and keeps outputs and execution counts as they are):

* every cell tagged ``remove-cell`` (the bootstrap cell and the hidden checks, which
  the book leaves out) is collapsed in JupyterLab (``"jupyter": {"source_hidden":
  true}``) and in Colab (``"cellView": "form"``), so it stays out of sight there too;
* the per-cell execution timestamps that Jupyter records (``"execution"``) are
  dropped, so that re-running a notebook changes only what its cells print;
* widget views (chapter 10's drawing canvas) are dropped from the outputs, and no
  widget state is stored: a widget lives only in a running kernel, and a stored
  view would make the book load widget code from the network.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))
import stored_figures  # noqa: E402
from nbval_tolerance import QUICK_OUTPUTS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CALIBRATIONS = ROOT / "benchmarks" / "results" / "calibration.json"
HIDDEN_TAG = "remove-cell"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PROVENANCE_ID = "provenance"

#: The calibration, run in a fresh process so that it measures the machine, not this
#: process's threads: the median GFLOP/s of a 1024 x 1024 float32 matrix product,
#: after a short warm-up, on all the threads the chapters use (``Timer`` times one
#: thread unless told: another program on the second core would go unnoticed).
CALIBRATE = """
import json, torch
from torch.utils import benchmark
n = 1024
a, b = torch.randn(n, n), torch.randn(n, n)
timer = benchmark.Timer("a @ b", globals={"a": a, "b": b},
                        num_threads=torch.get_num_threads())
timer.blocked_autorange(min_run_time=0.3)  # warm up: a fresh process starts cold
median = timer.blocked_autorange(min_run_time=1.0).median
print(json.dumps({"gflops": 2 * n**3 / median / 1e9, "threads": torch.get_num_threads(),
                  "torch": torch.__version__.split("+")[0]}))
"""


def cpu_model() -> str:
    """The processor's model name, as the operating system reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def calibrate(runs: int = 3, timeout: int = 120) -> dict:
    """A calibration: :data:`CALIBRATE` in ``runs`` fresh Python processes, one after
    the other, and the median of their GFLOP/s (one run alone varies by a tenth or
    more on an idle machine), with the thread count and PyTorch release."""
    results = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-c", CALIBRATE],
            capture_output=True, text=True, timeout=timeout, check=True,
        )  # fmt: skip
        results.append(json.loads(result.stdout.strip().splitlines()[-1]))
    results.sort(key=lambda result: result["gflops"])
    return results[len(results) // 2]


def machine_key(calibration: dict) -> str:
    """What a best calibration belongs to: processor, cores, threads, PyTorch and
    the method (before 2026-12-07 the product was timed on one thread)."""
    return (
        f"{cpu_model()} | {os.cpu_count()} cores | {calibration['threads']} threads"
        f" | torch {calibration['torch']} | timed on all threads"
    )


def recorded_best(key: str, path: Path | None = None) -> float:
    """The best calibration recorded for ``key`` (0 if none) in ``path`` (default
    :data:`CALIBRATIONS`)."""
    path = path or CALIBRATIONS
    if not path.is_file():
        return 0.0
    return json.loads(path.read_text()).get(key, {}).get("best_gflops", 0.0)


def record_best(key: str, gflops: float, path: Path | None = None) -> None:
    """Record ``gflops`` as ``key``'s best if it beats the recorded one."""
    path = path or CALIBRATIONS
    records = json.loads(path.read_text()) if path.is_file() else {}
    if gflops > records.get(key, {}).get("best_gflops", 0.0):
        records[key] = {"best_gflops": round(gflops, 1), "date": str(datetime.date.today())}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")


def quiet(gflops: float, best: float, max_slowdown: float) -> bool:
    """Whether a calibration of ``gflops`` is within ``max_slowdown`` (a fraction) of
    the machine's ``best``."""
    return gflops >= (1 - max_slowdown) * best


def provenance(calibration: dict, before: float, after: float, when=None) -> str:
    """The line a refreshed chapter ends with: when, with what and on what its
    outputs were made, and the calibration that shows the machine was quiet."""
    when = when or datetime.date.today()
    python = ".".join(platform.python_version_tuple()[:2])
    return (
        f"*Outputs stored on {when:%Y-%m-%d} with PyTorch {calibration['torch']}, "
        f"Python {python}, on {cpu_model()} ({os.cpu_count()} cores, "
        f"{calibration['threads']} threads); calibration {before:.0f} GFLOP/s before "
        f"and {after:.0f} after.*"
    )


def set_provenance(notebook: nbformat.NotebookNode, line: str) -> None:
    """Make ``line`` the notebook's last cell (a markdown cell with the id
    :data:`PROVENANCE_ID`), replacing the one a previous refresh wrote."""
    notebook.cells = [c for c in notebook.cells if c.get("id") != PROVENANCE_ID]
    cell = nbformat.v4.new_markdown_cell(line)
    cell.id = PROVENANCE_ID
    notebook.cells.append(cell)


def is_hidden(cell) -> bool:
    """Whether the book leaves ``cell`` out (tagged ``remove-cell``)."""
    return HIDDEN_TAG in cell.get("metadata", {}).get("tags", [])


def is_collapsed(cell) -> bool:
    """Whether ``cell`` is collapsed in JupyterLab and in Colab."""
    metadata = cell.get("metadata", {})
    return (
        metadata.get("jupyter", {}).get("source_hidden") is True
        and metadata.get("cellView") == "form"
    )


def normalise_metadata(notebook: nbformat.NotebookNode) -> int:
    """Collapse every ``remove-cell`` cell and drop execution timestamps, in place.

    Returns how many cells changed. Sources, outputs and execution counts are kept.
    """
    changed = 0
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        before = nbformat.from_dict(cell.metadata)
        cell.metadata.pop("execution", None)
        if is_hidden(cell):
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
            cell.metadata["cellView"] = "form"
        changed += cell.metadata != before
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                del output["data"][WIDGET_VIEW]
                changed += 1
    return changed


def run_notebook(path: Path, timeout: int = 600) -> tuple[nbformat.NotebookNode, float]:
    """``path`` run top to bottom in a fresh kernel (not saved), and the seconds it
    took."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        store_widget_state=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    return notebook, time.perf_counter() - start


def text_outputs(cell) -> list:
    """A code cell's outputs without figures: what nbval compares (images are not)."""
    kept = []
    for output in cell.get("outputs", []):
        output = nbformat.from_dict(output)
        if "data" in output:
            output["data"] = {k: v for k, v in output["data"].items() if k.startswith("text/")}
            if not output["data"]:
                continue
            output.pop("metadata", None)
        kept.append(output)
    return kept


def has_quick_run(notebook: nbformat.NotebookNode) -> bool:
    return any("MNIST_BOOK_QUICK" in cell.source for cell in notebook.cells)


def store_quick_outputs(path: Path, timeout: int = 600) -> int:
    """Run ``path`` as the test command does (``MNIST_BOOK_QUICK=1``) and keep, in
    each code cell whose text output then differs from the stored one, the quick
    run's outputs in its metadata (the stored outputs stay). Returns how many
    cells have quick outputs."""
    stored = nbformat.read(path, as_version=4)
    before = os.environ.get("MNIST_BOOK_QUICK")
    os.environ["MNIST_BOOK_QUICK"] = "1"
    try:
        quick, _ = run_notebook(path, timeout)
    finally:
        if before is None:
            os.environ.pop("MNIST_BOOK_QUICK")
        else:
            os.environ["MNIST_BOOK_QUICK"] = before
    count = 0
    for cell, quick_cell in zip(stored.cells, quick.cells, strict=True):
        cell.metadata.pop(QUICK_OUTPUTS, None)
        if cell.cell_type != "code":
            continue
        full, fast = text_outputs(cell), text_outputs(quick_cell)
        if fast != full:
            cell.metadata[QUICK_OUTPUTS] = fast
            count += 1
    save(stored, path)
    return count


def save(notebook: nbformat.NotebookNode, path: Path) -> None:
    normalise_metadata(notebook)
    nbformat.validate(notebook)
    nbformat.write(notebook, path)


def refresh(path: Path, execute: bool = True, timeout: int = 600) -> float:
    """Execute ``path`` in place (unless ``execute`` is false), normalise its
    metadata and save it, without a calibration or a provenance line (the tests use
    it on small notebooks). Returns the seconds the execution took."""
    if not execute:
        notebook, seconds = nbformat.read(path, as_version=4), 0.0
    else:
        notebook, seconds = run_notebook(path, timeout)
    save(notebook, path)
    return seconds


def calibrated_refresh(paths, max_slowdown, retries, timeout) -> int:
    """Run each chapter between two calibrations and store it only when both were
    within ``max_slowdown`` of the machine's best (see the module's docstring)."""
    first = [calibrate() for _ in range(3)]
    key = machine_key(first[0])
    best = max(recorded_best(key), *(c["gflops"] for c in first))
    print(f"machine: {key}")
    now = ", ".join(f"{c['gflops']:.0f}" for c in first)
    print(
        f"calibration: {now} GFLOP/s now, "
        f"best {best:.0f}; a chapter is stored only within {max_slowdown:.0%} of it"
    )
    failed = []
    for path in paths:
        for _ in range(retries + 1):
            before = calibrate()
            try:
                notebook, seconds = run_notebook(path, timeout)
            except Exception as error:  # a failing cell: report it, go on with the rest
                print(f"{path.name}: FAILED, nothing stored: {type(error).__name__}: "
                      f"{str(error)[-1500:]}", flush=True)  # fmt: skip
                failed.append(path.name)
                break
            after = calibrate()
            best = max(best, before["gflops"], after["gflops"])
            ok = all(quiet(c["gflops"], best, max_slowdown) for c in (before, after))
            line = (
                f"{seconds:6.1f} s  {path.name}: calibration "
                f"{before['gflops']:.0f} before, {after['gflops']:.0f} after "
                f"(best {best:.0f})"
            )
            print(line + ("" if ok else "  BUSY: not stored"), flush=True)
            if ok:
                set_provenance(notebook, provenance(before, before["gflops"], after["gflops"]))
                save(notebook, path)
                break
        else:
            print(
                f"{path.name}: the machine stayed busy in {retries + 1} tries; nothing "
                "stored for it. Stop what else runs and refresh it again."
            )
            failed.append(path.name)
    record_best(key, best)
    print(
        f"calibration best {best:.0f} GFLOP/s; chapters stored within "
        f"{max_slowdown:.0%} of it: {len(paths) - len(failed)} of {len(paths)}"
    )
    if failed:
        print(f"not stored: {', '.join(failed)}")
    for path in paths:
        if path.name not in failed and has_quick_run(nbformat.read(path, as_version=4)):
            print(f"{path.name}: quick outputs kept in {store_quick_outputs(path)} cells")
    figures_agree = stored_figures.main([]) == 0
    return 0 if not failed and figures_agree else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: all chapters")
    parser.add_argument(
        "--no-execute",
        dest="execute",
        action="store_false",
        help="run nothing: only collapse the hidden cells and drop timestamps",
    )
    parser.add_argument(
        "--max-slowdown",
        type=float,
        default=0.15,
        help="refuse a chapter whose calibration fell more than this fraction below "
        "the machine's best (default 0.15)",
    )
    parser.add_argument("--retries", type=int, default=2, help="tries after a busy one")
    parser.add_argument(
        "--quick-only",
        action="store_true",
        help="only run the chapters' quick version and keep its outputs in the metadata",
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    if args.quick_only:
        for path in paths:
            if has_quick_run(nbformat.read(path, as_version=4)):
                print(f"{path.name}: quick outputs kept in {store_quick_outputs(path)} cells")
        return 0
    if args.execute:
        # the stored outputs are the full runs: no quick versions (CONTRIBUTING.md)
        os.environ["MNIST_BOOK_QUICK"] = "0"
        return calibrated_refresh(paths, args.max_slowdown, args.retries, args.timeout)
    for path in paths:
        refresh(path, execute=False)
        print(f"normalised  {path.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
