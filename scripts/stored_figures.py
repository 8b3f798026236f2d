"""The figures the chapters time, side by side, and whether they agree.

    python scripts/stored_figures.py          # read the notebooks, write and check the table
    python scripts/stored_figures.py --check  # check only, write nothing

Several chapters time the same pipeline or a path they call faster than an earlier
chapter's. Stored on one quiet machine, those figures must agree: the same pipeline
in the same range in every chapter that times it (within a factor of
:data:`SAME_RANGE`), a faster path faster than its baseline, and nothing above its
own compute-only ceiling (by more than :data:`CEILING_SLACK`). This script reads each
figure from the stored outputs (:data:`FIGURES`), writes them with the rules' results
to ``notebooks/stored_figures.json`` and exits non-zero when a rule fails. The
refresh (``scripts/refresh_notebooks.py``) runs it after storing the chapters. It
is not a test: tests never compare times.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TABLE = NOTEBOOKS / "stored_figures.json"

#: Two timings of the same pipeline on one machine agree within this factor.
SAME_RANGE = 2.0
#: A pipeline may exceed its compute-only ceiling by this much (measurement noise).
CEILING_SLACK = 1.15

#: name: (notebook, pattern whose first group is the figure, how to combine matches)
FIGURES = {
    "03 DataLoader, batch 32, training (images/s)": (
        "03_training.ipynb", r"batches of 32:\s+([\d,]+) images/s", "first"),
    "04 DataLoader, batch 32, training (images/s)": (
        "04_faster.ipynb", r"^DataLoader\s+([\d,]+) images/s", "first"),
    "04 in memory, batch 32, training (images/s)": (
        "04_faster.ipynb", r"^TensorLoader\s+([\d,]+) images/s", "first"),
    "04 in memory, batch 256, training (images/s)": (
        "04_faster.ipynb", r"^batches of 256\s+([\d,]+) images/s", "first"),
    "04 final recipe (s an epoch)": (
        "04_faster.ipynb", r"^epoch +\d+/12 .*?([\d.]+) s(?: +\*)?$", "median"),
    "07 DataLoader, batch 32, 0 workers (samples/s)": (
        "07_dataloader.ipynb", r"^ToTensor, batch 32, 0 workers +([\d,]+)", "first"),
    "07 in memory, batch 32 (samples/s)": (
        "07_dataloader.ipynb", r"^in memory, batch 32, 0 workers +([\d,]+)", "first"),
    "07 in memory, batch 128 (samples/s)": (
        "07_dataloader.ipynb", r"^in memory, batch 128, 0 workers +([\d,]+)", "first"),
    "07 compute only, batch 32 (samples/s)": (
        "07_dataloader.ipynb", r"^compute only, batch 32 +([\d,]+)", "first"),
    "07 compute only, batch 128 (samples/s)": (
        "07_dataloader.ipynb", r"^compute only, batch 128 +([\d,]+)", "first"),
    "09 in memory, batch 128, training (images/s)": (
        "09_cuda.ipynb", r"^CPU: [\d.]+ s, ([\d,]+) images/s", "first"),
    "09 2048 x 2048 matrix product (GFLOP/s)": (
        "09_cuda.ipynb", r"^CPU: \d+ ms per 2048x2048 matmul, ([\d,]+) GFLOP/s", "first"),
    "12 final recipe, one process (s an epoch)": (
        "12_distributed.ipynb",
        r"^1 process on cpu.*\n.*\n(?:epoch .*\n)+.*?([\d.]+) s of training", "epoch"),
}  # fmt: skip

#: (rule, figures): "same" (every pair within SAME_RANGE), "faster" (the first above
#: the second), "ceiling" (the first at most CEILING_SLACK times the second).
RULES = [
    ("same", ["03 DataLoader, batch 32, training (images/s)",
              "04 DataLoader, batch 32, training (images/s)",
              "07 DataLoader, batch 32, 0 workers (samples/s)"]),
    ("same", ["04 in memory, batch 32, training (images/s)",
              "07 in memory, batch 32 (samples/s)"]),
    ("same", ["07 in memory, batch 128 (samples/s)",
              "09 in memory, batch 128, training (images/s)"]),
    ("same", ["04 final recipe (s an epoch)", "12 final recipe, one process (s an epoch)"]),
    ("faster", ["04 in memory, batch 32, training (images/s)",
                "04 DataLoader, batch 32, training (images/s)"]),
    ("faster", ["04 in memory, batch 32, training (images/s)",
                "03 DataLoader, batch 32, training (images/s)"]),
    ("faster", ["04 in memory, batch 256, training (images/s)",
                "04 in memory, batch 32, training (images/s)"]),
    ("faster", ["07 in memory, batch 32 (samples/s)",
                "07 DataLoader, batch 32, 0 workers (samples/s)"]),
    ("ceiling", ["07 in memory, batch 32 (samples/s)", "07 compute only, batch 32 (samples/s)"]),
    ("ceiling", ["07 in memory, batch 128 (samples/s)",
                 "07 compute only, batch 128 (samples/s)"]),
]  # fmt: skip

#: Steps of the final recipe in one epoch (50,000 images in batches of 256).
STEPS_PER_EPOCH = 196


def output_text(path: Path) -> str:
    """Every text output of a notebook, one after the other."""
    chunks = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            chunks.append(output.get("text", ""))
            chunks.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(chunks)


def read_figures(notebooks: Path = NOTEBOOKS) -> dict[str, float | None]:
    """Each figure of :data:`FIGURES` from the stored outputs (None if not found)."""
    texts: dict[str, str] = {}
    figures = {}
    for name, (notebook, pattern, combine) in FIGURES.items():
        if notebook not in texts:
            path = notebooks / notebook
            texts[notebook] = output_text(path) if path.is_file() else ""
        matches = list(re.finditer(pattern, texts[notebook], re.M))
        values = [float(m.group(1).replace(",", "")) for m in matches]
        if not values:
            figures[name] = None
        elif combine == "median":
            figures[name] = statistics.median(values)
        elif combine == "epoch":  # seconds for all steps -> seconds an epoch
            steps = int(re.search(r"(\d+) steps in", matches[0].group(0)).group(1))
            figures[name] = values[0] * STEPS_PER_EPOCH / steps
        else:
            figures[name] = values[0]
    return figures


def check(figures: dict[str, float | None]) -> list[str]:
    """What the rules find wrong with ``figures``: one line each."""
    problems = [f"not found in the stored outputs: {n}" for n, v in figures.items() if v is None]
    for rule, names in RULES:
        values = [figures.get(name) for name in names]
        if None in values:
            continue
        if rule == "same" and max(values) > SAME_RANGE * min(values):
            shown = ", ".join(f"{n} {v:,.1f}" for n, v in zip(names, values))
            problems.append(f"not in one range (x{SAME_RANGE:g}): {shown}")
        elif rule == "faster" and not values[0] > values[1]:
            problems.append(f"not faster: {names[0]} {values[0]:,.1f} <= {names[1]} "
                            f"{values[1]:,.1f}")  # fmt: skip
        elif rule == "ceiling" and values[0] > CEILING_SLACK * values[1]:
            problems.append(f"above its ceiling: {names[0]} {values[0]:,.1f} > "
                            f"{CEILING_SLACK:g} x {names[1]} {values[1]:,.1f}")  # fmt: skip
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing")
    args = parser.parse_args(argv)
    figures = read_figures()
    problems = check(figures)
    for name, value in figures.items():
        print(f"{name:48} {'-' if value is None else f'{value:,.1f}':>10}")
    for problem in problems:
        print(f"DISAGREE: {problem}")
    if not args.check:
        table = {"figures": figures, "rules": RULES, "problems": problems}
        TABLE.write_text(json.dumps(table, indent=1) + "\n")
    print("the stored figures agree" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
