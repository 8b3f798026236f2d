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
margin (CONTRIBUTING.md, "Comparing outputs").
"""

from __future__ import annotations

import argparse
import json
import math
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

from nbval_tolerance import (  # noqa: E402
    IGNORE_REASON,
    KINDS,
    QUICK_OUTPUTS,
    ROUNDING_MODES,
    SKIP,
    TAG,
    mask_outputs,
    split_numbers,
)

IGNORE = "nbval-ignore-output"
#: A tolerance is this many times the largest difference measured, rounded up to
#: 1, 2 or 5 times a power of ten.
MARGIN = 2.0

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


def texts(cell, stored: bool = False) -> list[str]:
    """The text outputs of a code cell, streams joined by name as nbval joins them;
    for a ``stored`` cell, those the quick run is compared with."""
    streams: dict[str, str] = {}
    found = []
    outputs = cell.get("outputs", [])
    if stored:
        outputs = cell.get("metadata", {}).get(QUICK_OUTPUTS, outputs)
    outputs = mask_outputs(outputs, cell.get("metadata", {}).get(SKIP, []))
    for output in outputs:
        if output.get("output_type") == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + output["text"]
        else:
            found += [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return list(streams.values()) + found


def differences(stored_cell, new_cell) -> dict[str, float] | str:
    """The largest difference of each kind of number between two runs of a cell, or
    a word saying why the outputs cannot be paired."""
    largest = dict.fromkeys((*KINDS, "rel"), 0.0)
    stored = texts(stored_cell, stored=True)
    new_cell = {**new_cell, "metadata": {SKIP: stored_cell.metadata.get(SKIP, [])}}
    new = texts(new_cell)
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
            if "e" in old.text.lower():  # 4.5e-08: its size is what may move
                largest["rel"] = max(largest["rel"], diff / abs(old.value or 1.0))
            else:
                largest[old.kind] = max(largest[old.kind], diff)
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
                if cell.cell_type != "code" or not texts(cell, stored=True):
                    continue
                if cell.get("id") not in new:
                    continue
                row = table.setdefault(
                    f"{name} cell {index}",
                    {"id": cell.get("id"), "tags": cell.metadata.get("tags", []), "modes": {}},
                )
                row["modes"][mode] = differences(cell, new[cell.get("id")])
    return table


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2 and 5 times a power of ten that is at least ``value``."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(f * power for f in (1, 2, 5, 10) if f * power >= value * (1 - 1e-9))


def unit(text: str) -> float:
    """One unit in the last printed digit of a number written without an exponent:
    0.01 for "98.85%"."""
    digits = text.rstrip("%")
    return 10.0 ** -len(digits.split(".")[1]) if "." in digits else 1.0


def proposal(row: dict, cell, margin: float = MARGIN) -> dict | str | None:
    """The tolerance for a cell from its measured variation: a reason when the output
    cannot be paired number by number, else the bounds: ``margin`` times the largest
    difference of each kind, rounded up, and at least one unit of the last digit for
    every percent and decimal the cell prints (a cell that printed them uncompared
    before, or that moved here, rounds differently somewhere); ``None`` when the
    cell prints nothing that needs a bound (compare exactly)."""
    results = list(row["modes"].values())
    words = sorted({r for r in results if isinstance(r, str)})
    if words:
        return ", ".join(words)
    largest = {k: max(r[k] for r in results) for k in (*KINDS, "rel")}
    bounds = {k: nice_ceiling(margin * v) for k, v in largest.items() if v}
    for number in split_numbers("\n".join(texts(cell, stored=True)))[1]:
        if number.kind != "integer" and "e" not in number.text.lower():
            bounds[number.kind] = max(bounds.get(number.kind, 0.0), unit(number.text))
    return {k: float(f"{v:.6g}") for k, v in bounds.items()} or None


def moved(row: dict) -> bool:
    """Whether any mode changed the cell's output."""
    return any(isinstance(r, str) or any(r.values()) for r in row["modes"].values())


def apply(table: dict, stored_dir: Path, margin: float = MARGIN) -> list[str]:
    """Tag and bound by its :func:`proposal` each measured cell that was left
    uncompared or bounded before, or that moved under another rounding, except the
    cells whose metadata says why they are not compared (``nbval_ignore_reason``:
    timings, hardware, addresses). Returns a line per change."""
    changes = []
    by_notebook: dict[str, dict] = {}
    for key, row in table.items():
        by_notebook.setdefault(key.split(" cell ")[0], {})[row["id"]] = row
    for name, rows in by_notebook.items():
        path = stored_dir / name
        notebook = nbformat.read(path, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.get("id") not in rows or IGNORE_REASON in cell.metadata:
                continue
            tags = cell.metadata.get("tags", [])
            if not (IGNORE in tags or TAG in tags or moved(rows[cell.id])):
                continue  # compared exactly, and nothing moved it
            tags = [t for t in tags if t not in (IGNORE, TAG)]
            cell.metadata.pop("tolerance", None)
            result = proposal(rows[cell.id], cell, margin)
            if isinstance(result, str):
                tags.append(IGNORE)
                changes.append(f"{name} cell {index}: NOT COMPARABLE ({result}): give a reason")
            elif result:
                tags.append(TAG)
                cell.metadata["tolerance"] = result
                changes.append(f"{name} cell {index}: tolerance {result}")
            else:
                changes.append(f"{name} cell {index}: exact")
            if tags:
                cell.metadata["tags"] = tags
            else:
                cell.metadata.pop("tags", None)
        nbformat.write(notebook, path)
    return changes


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
        "--apply",
        action="store_true",
        help="tag and bound the measured cells in the stored notebooks (see apply())",
    )
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
    if args.apply:
        for change in apply(table, args.stored):
            print(change)
    return 0


if __name__ == "__main__":
    sys.exit(main())
