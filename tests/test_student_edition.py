"""The two scripts that make notebooks from notebooks: the student edition (solutions
blanked, their checks dropped, everything else kept, and it still runs) and the
refresh script (hidden cells collapsed in JupyterLab and Colab, outputs kept)."""

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
REFRESH = ROOT / "scripts" / "refresh_notebooks.py"
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


def is_solution_check(cell) -> bool:
    return "solution-check" in cell.metadata.get("tags", [])


def load_script(path: Path):
    """A script of scripts/ as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(paths) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


@pytest.fixture(scope="module")
def edition_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The student edition of every chapter, written once, and how the script ended."""
    out = tmp_path_factory.mktemp("student_edition")
    before = digest(NOTEBOOKS)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True
    )
    assert digest(NOTEBOOKS) == before, "the source notebooks must not change"
    return out, result


@pytest.fixture
def edition(edition_run, request) -> Path:
    """The edition's folder; a test of one chapter needs that chapter's copy."""
    out, result = edition_run
    source = (
        request.node.callspec.params.get("source") if hasattr(request.node, "callspec") else None
    )
    if source is not None and not (out / source.name).is_file():
        pytest.fail(f"no student copy of {source.name}:\n{result.stderr}")
    return out


def test_every_chapter_is_copied(edition_run):
    out, result = edition_run
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]


def split_solutions(notebook) -> tuple[list, list]:
    """The cells of ``notebook`` that belong to solutions (tagged ``solution`` or
    ``solution-check``, or between ``{solution-start}`` and ``{solution-end}``,
    markers included), and the others."""
    solution, other, inside = [], [], False
    for cell in notebook.cells:
        if "{solution-start}" in cell.source:
            inside = True
        removed = inside or is_solution(cell) or is_solution_check(cell)
        (solution if removed else other).append(cell)
        if "{solution-end}" in cell.source:
            inside = False
    return solution, other


def expected_blanks(notebook) -> int:
    """One blank per ``{solution-start}`` gate, plus one per ``solution`` cell
    outside a gate."""
    blanks, inside = 0, False
    for cell in notebook.cells:
        if "{solution-start}" in cell.source:
            inside, blanks = True, blanks + 1
        elif "{solution-end}" in cell.source:
            inside = False
        elif not inside and is_solution(cell) and not is_solution_check(cell):
            blanks += 1
    return blanks


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda path: path.stem)
def test_solutions_are_blanked_and_the_rest_kept(edition, source):
    original = nbformat.read(source, as_version=4)
    copy = nbformat.read(edition / source.name, as_version=4)
    nbformat.validate(copy)

    stubs = [cell for cell in copy.cells if is_solution(cell)]
    assert len(stubs) == expected_blanks(original), "one blank per solution"
    assert not any(is_solution_check(cell) for cell in copy.cells), "checks of solutions go"
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
    script = load_script(SCRIPT)
    with pytest.raises(SystemExit):
        script.main(["--out", str(ROOT / "notebooks")])
    assert "would overwrite the source notebooks" in capsys.readouterr().err


@pytest.mark.skipif(EXECUTED is None, reason="no notebooks yet")
def test_the_copy_runs_top_to_bottom(edition):
    """The blanks are comments, so a student starts from a notebook that runs."""
    if not (edition / EXECUTED.name).is_file():
        pytest.fail(f"no student copy of {EXECUTED.name}")
    copy = nbformat.read(edition / EXECUTED.name, as_version=4)
    NotebookClient(
        copy,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(edition)}},
    ).execute()
    stubs = [cell for cell in copy.cells if is_solution(cell)]
    assert all(cell.execution_count for cell in stubs)


# --- small notebooks made on the spot ----------------------------------------------


def code(source: str, tags=(), outputs=None, count=None):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    cell.outputs = outputs or []
    cell.execution_count = count
    return cell


def markdown(source: str):
    return nbformat.v4.new_markdown_cell(source)


def exercise_notebook() -> nbformat.NotebookNode:
    """An exercise with its solution and a hidden check of that solution."""
    stored = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    return nbformat.v4.new_notebook(
        cells=[
            code("import math", tags=["remove-cell"]),
            markdown("```{exercise}\n:label: demo-ex-answer\n\nCompute the answer.\n```"),
            markdown("```{solution-start} demo-ex-answer\n:class: dropdown\n```"),
            code("answer = 6 * 7\nprint(answer)", ["solution"], stored, 2),
            markdown("```{solution-end}\n```"),
            code("assert answer == 42", tags=["remove-cell", "solution-check"]),
            code("assert math.pi > 3", tags=["remove-cell"]),
        ]
    )


def test_student_copy_drops_the_checks_of_solutions_and_keeps_the_others():
    script = load_script(SCRIPT)
    copy = script.student_copy(exercise_notebook())
    sources = [cell.source for cell in copy.cells]
    assert "assert answer == 42" not in sources, "the check would fail on the blank"
    assert "answer = 6 * 7\nprint(answer)" not in sources
    assert STUB in sources
    assert "assert math.pi > 3" in sources, "checks of the chapter's own claims stay"
    assert sources[0] == "import math"


def test_student_copy_of_a_notebook_with_a_check_runs(tmp_path):
    """Without dropping the check, running the copy fails with a NameError."""
    script = load_script(SCRIPT)
    copy = script.student_copy(exercise_notebook())
    NotebookClient(copy, timeout=120, kernel_name="python3").execute()
    assert all(cell.execution_count for cell in copy.cells if cell.cell_type == "code")


def hidden_cells_notebook() -> nbformat.NotebookNode:
    stored = [nbformat.v4.new_output("stream", name="stdout", text="stored\n")]
    visible = code("print('stored')", outputs=stored, count=3)
    visible.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    return nbformat.v4.new_notebook(
        cells=[
            code("raise SystemExit('never run')", ["remove-cell"], stored, 1),
            visible,
            markdown("Some prose."),
            code("x = 1", tags=["remove-cell", "nbval-ignore-output"], count=4),
        ]
    )


def test_normalise_metadata_collapses_hidden_cells_only():
    refresh = load_script(REFRESH)
    notebook = hidden_cells_notebook()
    assert refresh.normalise_metadata(notebook) == 3
    hidden, visible, prose, other_hidden = notebook.cells
    for cell in (hidden, other_hidden):
        assert cell.metadata["jupyter"] == {"source_hidden": True}
        assert cell.metadata["cellView"] == "form"
        assert refresh.is_collapsed(cell)
    assert other_hidden.metadata["tags"] == ["remove-cell", "nbval-ignore-output"]
    assert not refresh.is_collapsed(visible) and "jupyter" not in visible.metadata
    assert "execution" not in visible.metadata, "timestamps are dropped"
    assert not refresh.is_collapsed(prose)
    assert refresh.normalise_metadata(notebook) == 0, "a second pass changes nothing"


def test_refresh_without_executing_keeps_outputs_and_counts(tmp_path, capsys):
    refresh = load_script(REFRESH)
    path = tmp_path / "demo.ipynb"
    nbformat.write(hidden_cells_notebook(), path)
    assert refresh.main(["--no-execute", str(path)]) == 0
    assert "normalised  demo.ipynb" in capsys.readouterr().out
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    before = hidden_cells_notebook()
    for cell, original in zip(notebook.cells, before.cells, strict=True):
        assert cell.source == original.source
        if cell.cell_type == "code":
            assert cell.outputs == original.outputs, "nothing was run"
            assert cell.execution_count == original.execution_count
    assert refresh.is_collapsed(notebook.cells[0])


def test_refresh_executes_and_collapses(tmp_path):
    refresh = load_script(REFRESH)
    path = tmp_path / "demo.ipynb"
    notebook = nbformat.v4.new_notebook(
        cells=[code("secret = 6 * 7", ["remove-cell"]), code("print(secret)")]
    )
    nbformat.write(notebook, path)
    refresh.refresh(path)
    hidden, shown = nbformat.read(path, as_version=4).cells
    assert refresh.is_collapsed(hidden) and not refresh.is_collapsed(shown)
    assert (hidden.execution_count, shown.execution_count) == (1, 2)
    assert shown.outputs[0]["text"] == "42\n"
    assert "execution" not in shown.metadata, "no timestamps are recorded"


def test_refresh_refuses_a_missing_notebook(tmp_path, capsys):
    refresh = load_script(REFRESH)
    with pytest.raises(SystemExit):
        refresh.main(["--no-execute", str(tmp_path / "nothing.ipynb")])
    assert "no such notebook" in capsys.readouterr().err


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_hidden_cells_are_collapsed_in_jupyter_and_colab(path):
    """Run ``scripts/refresh_notebooks.py --no-execute`` to fix a failure here."""
    refresh = load_script(REFRESH)
    cells = nbformat.read(path, as_version=4).cells
    open_cells = [
        cell.source.splitlines()[0] if cell.source else "(empty)"
        for cell in cells
        if refresh.is_hidden(cell) and not refresh.is_collapsed(cell)
    ]
    assert not open_cells, (
        f"{path.name}: remove-cell cells not collapsed in Jupyter and Colab (run "
        f"scripts/refresh_notebooks.py --no-execute {path.name}): {open_cells}"
    )


@pytest.mark.parametrize("drop", ["{solution-end}", "second end"])
def test_a_solution_without_its_end_is_named(tmp_path, capsys, drop):
    notebook = exercise_notebook()
    if drop == "{solution-end}":
        notebook.cells = [c for c in notebook.cells if "{solution-end}" not in c.source]
    else:  # a second exercise starts before the first one's solution ends
        notebook.cells.insert(4, markdown("```{solution-start} demo-ex-two\n```"))
    path = tmp_path / "demo.ipynb"
    nbformat.write(notebook, path)
    script = load_script(SCRIPT)
    assert script.main(["--out", str(tmp_path / "out"), str(path)]) == 1
    assert "demo.ipynb: the solution of demo-ex-" in capsys.readouterr().err


def test_a_solution_may_end_in_a_cell_of_prose():
    """An explanation that closes a solution shares its cell with the end marker."""
    notebook = exercise_notebook()
    notebook.cells[4] = markdown("A product of two factors.\n\n```{solution-end}\n```")
    copy = load_script(SCRIPT).student_copy(notebook)
    text = "\n".join(cell.source for cell in copy.cells)
    assert "A product of two factors" not in text and "{solution" not in text
    assert [cell.source for cell in copy.cells].count(STUB) == 1
    nbformat.validate(copy)
