"""The student edition: solutions blanked, everything else kept, and it still runs."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "student_edition.py"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUB = "# Your solution here"

#: The copy that is executed: a chapter that is quick to run, else any notebook.
EXECUTED = next(
    (
        path
        for name in ("02_architecture", "08_autograd")
        for path in NOTEBOOKS
        if path.stem == name
    ),
    NOTEBOOKS[0] if NOTEBOOKS else None,
)


def is_solution(cell) -> bool:
    return "solution" in cell.metadata.get("tags", [])


def digest(paths) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student_edition")
    before = digest(NOTEBOOKS)
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True
    )
    assert digest(NOTEBOOKS) == before, "the source notebooks must not change"
    return out


def test_every_chapter_is_copied(edition):
    assert sorted(path.name for path in edition.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]


def split_solutions(notebook) -> tuple[list, list]:
    """The cells of ``notebook`` that belong to solutions (tagged ``solution``, or
    between ``{solution-start}`` and ``{solution-end}``, markers included), and the others."""
    solution, other, inside = [], [], False
    for cell in notebook.cells:
        if "{solution-start}" in cell.source:
            inside = True
        (solution if inside or is_solution(cell) else other).append(cell)
        if "{solution-end}" in cell.source:
            inside = False
    return solution, other


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda path: path.stem)
def test_solutions_are_blanked_and_the_rest_kept(edition, source):
    original = nbformat.read(source, as_version=4)
    copy = nbformat.read(edition / source.name, as_version=4)
    nbformat.validate(copy)

    stubs = [cell for cell in copy.cells if is_solution(cell)]
    assert len(stubs) == sum(is_solution(cell) for cell in original.cells), "one blank each"
    for stub in stubs:
        assert stub.cell_type == "code" and stub.source == STUB
        assert stub.outputs == [] and stub.execution_count is None

    solution, kept = split_solutions(original)
    public = {line.strip() for cell in kept for line in cell.source.splitlines()}
    lines = {line.strip() for cell in copy.cells for line in cell.source.splitlines()}
    for cell in solution:
        for line in cell.source.splitlines():
            line = line.strip()
            if len(line) > 3 and line not in public and not line.startswith("```"):
                assert line not in lines, f"solution left in the copy: {line!r}"
    text = "\n".join(cell.source for cell in copy.cells)
    assert "{solution" not in text, "the solution markers are removed"
    assert "{exercise}" not in text, "exercises become plain Markdown"

    others = [cell for cell in copy.cells if not is_solution(cell)]
    assert len(others) == len(kept)
    for before, after in zip(kept, others):
        if before.cell_type == "code":
            assert after == before, "code cells other than solutions are copied unchanged"


def test_out_folder_may_not_be_the_sources(capsys):
    spec = importlib.util.spec_from_file_location("student_edition", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit):
        script.main(["--out", str(ROOT / "notebooks")])
    assert "would overwrite the source notebooks" in capsys.readouterr().err


@pytest.mark.skipif(EXECUTED is None, reason="no notebooks yet")
def test_the_copy_runs_top_to_bottom(edition):
    """The blanks are comments, so a student starts from a notebook that runs."""
    copy = nbformat.read(edition / EXECUTED.name, as_version=4)
    NotebookClient(
        copy,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(edition)}},
    ).execute()
    stubs = [cell for cell in copy.cells if is_solution(cell)]
    assert all(cell.execution_count for cell in stubs)
