"""Write the student edition: a copy of the chapters with the exercise solutions blanked.

    python scripts/student_edition.py                       # every chapter -> student_edition/
    python scripts/student_edition.py --out handout notebooks/03_training.ipynb

In the copy, each solution (the cells between a ``{solution-start}`` cell and its
``{solution-end}`` cell, and any cell tagged ``solution``) becomes one code cell
reading ``# Your solution here``, with no output; the ``{solution-...}`` marker cells
go, and each ``{exercise}`` directive becomes plain Markdown, which Jupyter shows
well. A hidden check of a solution (a cell tagged ``solution-check``) is left out,
since it would fail on the blank. Everything else is copied unchanged, so the copy
still runs top to bottom. The notebooks in notebooks/ are only read: they stay the
single source.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STUB = "# Your solution here"
CHECK_TAG = "solution-check"  # a hidden check that needs a solution

SOLUTION_START = re.compile(r"^\s*(```+|:::+)\{solution-start\}")
SOLUTION_END = re.compile(r"^\s*(```+|:::+)\{solution-end\}")
SOLUTION = re.compile(r"^\s*(```+|:::+)\{solution\}")  # a solution written in Markdown
EXERCISE = re.compile(
    r"^(?P<fence>```+|:::+)\{exercise\}(?P<title>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.M | re.S,
)


#: A ``{solution-start}`` or ``{solution-end}`` directive anywhere in a Markdown cell.
GATE = re.compile(
    r"^(?P<fence>```+|:::+)\{solution-(?:start|end)\}[^\n]*\n(?:[^\n]*\n)*?(?P=fence)[ \t]*$",
    re.M,
)


def _split_gates(cell) -> list:
    """``cell``, or, when a solution's start or end shares a Markdown cell with prose
    (an explanation that ends the solution, say), the prose and each marker as cells
    of their own, in order."""
    if cell.cell_type != "markdown":
        return [cell]
    parts, position = [], 0
    for match in GATE.finditer(cell.source):
        parts += [cell.source[position : match.start()].strip(), match.group(0)]
        position = match.end()
    parts = [part for part in [*parts, cell.source[position:].strip()] if part]
    if len(parts) <= 1:
        return [cell]
    cells = []
    for number, part in enumerate(parts):
        piece = nbformat.from_dict(cell)
        piece.source = part
        if "id" in piece and number:
            piece.id = f"{cell.id}-{number}"[-64:]
        cells.append(piece)
    return cells


def _exercise_to_markdown(match: re.Match) -> str:
    """A ``{exercise}`` directive as Markdown: its options (``:label: ...``) dropped."""
    lines = match.group("body").splitlines()
    while lines and re.match(r"^:[\w-]+:", lines[0]):
        lines.pop(0)
    title = match.group("title").strip()
    heading = f"**Exercise: {title}.**" if title else "**Exercise.**"
    return f"{heading} " + "\n".join(lines).strip()


def _stub_cell(notebook: nbformat.NotebookNode, number: int, markdown: bool = False):
    """A blank for the student: no output, no execution count, a stable id."""
    if markdown:
        cell = nbformat.v4.new_markdown_cell("*Your answer here.*")
    else:
        cell = nbformat.v4.new_code_cell(STUB)
    cell.metadata["tags"] = ["solution"]
    if (notebook.nbformat, notebook.nbformat_minor) >= (4, 5):
        cell.id = f"solution-{number}"
    else:
        cell.pop("id", None)
    return cell


def student_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` with every solution blanked (see the module docstring)."""
    copy = nbformat.from_dict(notebook)  # a deep copy: the source is never changed
    cells = []
    in_solution = stubbed = False
    label = ""

    def stub(markdown: bool = False) -> None:
        number = sum("solution" in c.metadata.get("tags", []) for c in cells) + 1
        cells.append(_stub_cell(copy, number, markdown))

    for cell in [piece for original in copy.cells for piece in _split_gates(original)]:
        source = cell.source
        if cell.cell_type == "markdown" and SOLUTION_START.match(source):
            if in_solution:
                raise ValueError(f"the solution of {label} has no {{solution-end}} cell")
            in_solution, stubbed = True, False
            label = source.split("}", 1)[1].split("\n", 1)[0].strip() or "an exercise"
            continue
        if cell.cell_type == "markdown" and SOLUTION_END.match(source):
            if not stubbed:
                stub()
            in_solution = False
            continue
        if cell.cell_type == "markdown" and SOLUTION.match(source):
            stub(markdown=True)
            continue
        if CHECK_TAG in cell.metadata.get("tags", []):
            continue  # it checks the solution that the copy blanks
        tagged = "solution" in cell.metadata.get("tags", [])
        if in_solution or tagged:
            if cell.cell_type == "code" and not stubbed:
                stub()
                stubbed = in_solution  # outside a gate, each tagged cell is its own stub
            continue
        if cell.cell_type == "markdown":
            cell.source = EXERCISE.sub(_exercise_to_markdown, source)
        cells.append(cell)
    if in_solution:
        raise ValueError(f"the solution of {label} has no {{solution-end}} cell")
    copy.cells = cells
    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--out", type=Path, default=Path("student_edition"), help="output folder")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    out = args.out.resolve()
    if any(out == path.resolve().parent for path in paths):
        parser.error(f"--out {args.out} would overwrite the source notebooks")
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        try:
            copy = student_copy(notebook)
        except ValueError as error:  # reported, and the other chapters still copied
            print(f"{path}: {error}", file=sys.stderr)
            failed += 1
            continue
        nbformat.write(copy, out / path.name)
        print(out / path.name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
