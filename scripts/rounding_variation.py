"""Measure how far the chapters' printed numbers move under other float rounding.

    python scripts/rounding_variation.py                       # every mode, every chapter
    python scripts/rounding_variation.py --modes one-thread notebooks/04_faster.ipynb
    python scripts/rounding_variation.py --report-only         # compare runs already made

Another processor rounds differently; this machine can be made to round as others
would (``ROUNDING_MODES`` in ``notebooks/nbval_tolerance.py``). For each mode, every
chapter is run top to bottom in a fresh kernel, as the test command runs it
(``MNIST_BOOK_QUICK=1``), in a copy of ``notebooks/`` under ``--out`` (chapter 4's
checkpoints stay there, for chapters 5 and 10). Then each code cell's output is
paired, number by number, with the stored one (``notebooks/nbval_tolerance.py``),
and the largest difference of each kind of number (percent, decimal, integer, and
relative) over all modes is written per cell to ``<out>/variation.json`` and
printed. A ``nbval-tolerance`` cell's bounds are set from these figures, with a
margin (CONTRIBUTING.md, "Tolerances").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))

from nbval_tolerance import KINDS, ROUNDING_MODES, split_numbers  # noqa: E402

#: The modes, from the module that compares within tolerances.
MODES = ROUNDING_MODES

#: Chapters that must run in order in one folder: 4 trains the model 5 and 10 load.
CHAIN = ("04_faster.ipynb", "05_testing.ipynb", "10_own_digits.ipynb")


def execute(paths: list[Path], env: dict[str, str], timeout: int) -> str:
    """Run each notebook in place in a fresh kernel whose environment has ``env``."""
    before = dict(os.environ)
    os.environ.update(env)
    try:
        for path in paths:
            _execute_one(path, timeout)
    finally:
        os.environ.clear()
        os.environ.update(before)
    return ", ".join(str(p) for p in paths)


def _execute_one(path: Path, timeout: int) -> None:
    notebook = nbformat.read(path, as_version=4)
    try:
        NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    except Exception as error:  # keep what ran; the report shows the gap
        print(f"{path}: {type(error).__name__}: {str(error)[:300]}", flush=True)
    nbformat.write(notebook, path)


def texts(cell) -> list[str]:
    """The text outputs of a code cell, streams joined by name as nbval joins them."""
    streams: dict[str, str] = {}
    found = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + output["text"]
        else:
            found += [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return list(streams.values()) + found


def differences(stored_cell, new_cell) -> dict[str, float] | str:
    """The largest difference of each kind of number between two runs of a cell, or
    a word saying why the outputs cannot be paired."""
    largest = dict.fromkeys(KINDS, 0.0)
    largest["rel"] = 0.0
    stored, new = texts(stored_cell), texts(new_cell)
    if len(stored) != len(new):
        return "outputs differ in number"
    for old_text, new_text in zip(stored, new):
        old_words, old_numbers = split_numbers(old_text)
        new_words, new_numbers = split_numbers(new_text)
        if len(old_numbers) != len(new_numbers):
            return "numbers differ in count"
        if [w.split() for w in old_words] != [w.split() for w in new_words]:
            return "words differ"
        for old, fresh in zip(old_numbers, new_numbers):
            diff = abs(fresh.value - old.value)
            largest[old.kind] = max(largest[old.kind], diff)
            if old.value:
                largest["rel"] = max(largest["rel"], diff / abs(old.value))
    return largest


def report(out: Path, names: list[str], modes: list[str], stored_dir: Path = NOTEBOOKS) -> dict:
    """Per code cell with text output: its tags and, per mode, the largest difference
    of each kind of number from the stored output (cells paired by their ids)."""
    table = {}
    for name in names:
        stored = nbformat.read(stored_dir / name, as_version=4)
        for mode in modes:
            path = out / mode / "notebooks" / name
            if not path.is_file():
                continue
            new = {cell.get("id"): cell for cell in nbformat.read(path, as_version=4).cells}
            for index, cell in enumerate(stored.cells):
                if cell.cell_type != "code" or not texts(cell) or cell.get("id") not in new:
                    continue
                row = table.setdefault(
                    f"{name} cell {index}",
                    {"id": cell.get("id"), "tags": cell.metadata.get("tags", []), "modes": {}},
                )
                row["modes"][mode] = differences(cell, new[cell.get("id")])
    return table


def summary_line(key: str, row: dict) -> str | None:
    words = sorted({v for v in row["modes"].values() if isinstance(v, str)})
    numeric = [v for v in row["modes"].values() if isinstance(v, dict)]
    largest = {k: max((v[k] for v in numeric), default=0.0) for k in (*KINDS, "rel")}
    if not words and not any(largest.values()):
        return None
    figures = "  ".join(f"{k} {largest[k]:.3g}" for k in (*KINDS, "rel") if largest[k])
    tags = ",".join(t for t in row["tags"] if t.startswith("nbval")) or "-"
    return f"{key:34} {tags:22} {figures} {' '.join(words)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--modes", nargs="*", choices=list(MODES), default=list(MODES))
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "rounding")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--stored", type=Path, default=NOTEBOOKS, help="the stored notebooks to compare with"
    )
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    names = [p.name for p in paths]
    if not args.report_only:
        base_env = {
            "MNIST_BOOK_QUICK": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
            "MNIST_DATA_DIR": os.environ.get("MNIST_DATA_DIR", str(ROOT / "data")),
        }
        jobs = []
        for mode in args.modes:
            folder = args.out / mode / "notebooks"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name in names:
                shutil.copy(NOTEBOOKS / name, folder / name)
            env = {**base_env, **MODES[mode]}
            chain = [folder / n for n in CHAIN if n in names]
            if chain:
                jobs.append(([*chain], env))
            jobs += [([folder / n], env) for n in names if n not in CHAIN]
        jobs.sort(key=lambda job: -len(job[0]))  # the chains first: they take longest
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(execute, p, e, args.timeout) for p, e in jobs]
            for future in futures:
                print("ran", future.result(), flush=True)
    table = report(args.out, names, args.modes, args.stored)
    (args.out / "variation.json").write_text(json.dumps(table, indent=1))
    for key, row in table.items():
        line = summary_line(key, row)
        if line:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
