"""The comparison of a cell's numbers within a tolerance (notebooks/nbval_tolerance.py):
which numbers it finds, what passes and what must fail, and nbval using it through
notebooks/conftest.py on a small notebook of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from conftest import NOTEBOOKS

sys.path.insert(0, str(NOTEBOOKS))
from nbval_tolerance import (  # noqa: E402
    Number,
    compare_text,
    mask_outputs,
    masked,
    parse_tolerance,
    reconcile,
    reference_outputs,
    split_numbers,
)

BOUNDS = parse_tolerance({"percent": 0.3, "decimal": 0.002, "integer": 5})


def test_numbers_are_found_as_the_chapters_print_them():
    text = "epoch  1/12  loss 0.2698 acc 91.89%  9,885 of 10,000  diff 4.5e-08 -99.9831"
    _, numbers = split_numbers(text)
    assert [n.text for n in numbers] == [
        "1", "12", "0.2698", "91.89%", "9,885", "10,000", "4.5e-08", "-99.9831",
    ]  # fmt: skip
    assert [n.kind for n in numbers] == [
        "integer", "integer", "decimal", "percent", "integer", "integer", "decimal", "decimal",
    ]  # fmt: skip
    assert numbers[4].value == 9885 and numbers[3].value == 91.89


def test_digits_inside_words_are_not_numbers():
    _, numbers = split_numbers("cu130 mlp2.pt x_32 2048x2048 nan")
    assert numbers == []


def test_numbers_within_their_bounds_pass():
    stored = "val loss 0.2698 acc 91.89%, 9,885 right"
    new = "val loss 0.2712 acc 92.10%, 9,890 right"
    assert compare_text(stored, new, BOUNDS) == []


@pytest.mark.parametrize(
    "new, which",
    [
        ("val loss 0.2721 acc 91.89%, 9,885 right", "0.2721"),  # decimal off by 0.0023
        ("val loss 0.2698 acc 92.20%, 9,885 right", "92.20%"),  # 0.31 points
        ("val loss 0.2698 acc 91.89%, 9,891 right", "9,891"),  # 6 more
    ],
)
def test_a_number_out_of_its_bound_fails_and_is_named(new, which):
    mismatches = compare_text("val loss 0.2698 acc 91.89%, 9,885 right", new, BOUNDS)
    assert len(mismatches) == 1
    assert mismatches[0].new.text == which
    message = str(mismatches[0])
    assert f"new {which}" in message and "stored" in message and "tolerance" in message


def test_a_kind_left_out_is_exact():
    bounds = parse_tolerance({"decimal": 0.01})
    assert compare_text("shape (64, 784)", "shape (64, 785)", bounds)
    assert compare_text("90%", "90%", bounds) == []
    assert compare_text("90%", "91%", bounds)


def test_rel_bounds_tiny_numbers_by_their_size():
    bounds = parse_tolerance({"rel": 1.0})
    assert compare_text("largest 4.5e-08", "largest 8.0e-08", bounds) == []
    assert compare_text("largest 4.5e-08", "largest 1.0e-07", bounds)


@pytest.mark.parametrize(
    "new",
    [
        "val loss 0.2698 acc 91.89% right",  # a number fewer
        "train loss 0.2698 acc 91.89%, 9,885 right",  # another word
        "val loss nan acc 91.89%, 9,885 right",  # nan is a word, compared exactly
        "val loss 0.2698 acc 91.89, 9,885 right",  # a percent became a decimal
    ],
)
def test_other_words_or_layout_are_left_to_nbvals_diff(new):
    assert compare_text("val loss 0.2698 acc 91.89%, 9,885 right", new, BOUNDS) is None


def test_only_the_width_of_space_runs_may_change():
    assert compare_text("acc  9.99%\nnext", "acc 10.01%\nnext", BOUNDS) == []
    assert compare_text("acc 9.99%\nnext", "acc 10.01%\n\nnext", BOUNDS) is None


@pytest.mark.parametrize(
    "spec",
    [None, [0.1], {"percent": -1}, {"percnt": 0.1}, {"decimal": "0.1"}, {"integer": True}],
)
def test_bad_metadata_is_refused_with_a_reason(spec):
    with pytest.raises(ValueError, match="tolerance"):
        parse_tolerance(spec)


def test_reconcile_puts_the_stored_text_back_only_where_numbers_pass():
    stored = [
        {"output_type": "stream", "name": "stdout", "text": "acc 98.85%\n"},
        {"output_type": "execute_result", "data": {"text/plain": "loss=0.0376"}},
    ]
    new = [
        {"output_type": "stream", "name": "stdout", "text": "acc 98.90%\n"},
        {"output_type": "execute_result", "data": {"text/plain": "loss=0.0450"}},
    ]
    reconciled, problems = reconcile(new, stored, BOUNDS)
    assert reconciled[0]["text"] == "acc 98.85%\n"
    assert reconciled[1]["data"]["text/plain"] == "loss=0.0450"  # left as it ran
    assert [(where, m.stored.text) for where, m in problems] == [("text/plain", "0.0376")]
    assert new[0]["text"] == "acc 98.90%\n"  # the outputs given are not changed


def _cell(source: str, stored: str, tolerance=None, quick=None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored)]
    if tolerance is not None:
        cell.metadata["tags"] = ["nbval-tolerance"]
        cell.metadata["tolerance"] = tolerance
    if quick is not None:
        cell.metadata["quick_outputs"] = [
            nbformat.v4.new_output("stream", name="stdout", text=quick)
        ]
    return cell


def test_nbval_uses_the_tolerance_through_the_notebooks_conftest(tmp_path):
    """A notebook beside copies of notebooks/'s conftest: in-bound numbers pass, an
    out-of-bound one fails with the diff that names it, untagged cells stay exact, and
    in the quick run a cell's quick outputs are what it is compared with."""
    for name in ("conftest.py", "nbval_tolerance.py", "nbval_sanitize.cfg"):
        shutil.copy(NOTEBOOKS / name, tmp_path / name)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    line = 'print("val loss 0.2712, acc 98.90%, 9,890 right")'
    bounds = {"decimal": 0.002, "percent": 0.1, "integer": 10}
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        _cell(line, "val loss 0.2698, acc 98.85%, 9,885 right\n", bounds),  # passes
        _cell(line, "val loss 0.2600, acc 98.85%, 9,885 right\n", bounds),  # fails
        _cell(line, "val loss 0.2698, acc 98.85%, 9,885 right\n"),  # exact: fails
        _cell(line, "val loss 0.2712, acc 98.90%, 9,890 right\n"),  # exact: passes
        _cell(line, "full run\n", bounds, quick="val loss 0.27, acc 98.9%, 9,890 right\n"),
        _cell(line, "full run\n", quick="val loss 0.2712, acc 98.90%, 9,890 right\n"),
        _cell(line, "val loss 0.2712, acc 98.90%, 9,890 right\n", quick="quick run\n"),
        _cell('print("loss 0.2712  13.9 s")', "loss 0.2712   2.1 s\n"),
    ]
    notebook.cells[-1].metadata["nbval_skip"] = [r" *[\d.]+ s$"]  # a timing: not compared
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["MNIST_BOOK_QUICK"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env",
         "-p", "no:cacheprovider", "-rA", "tiny.ipynb"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = result.stdout
    assert "3 failed, 5 passed" in out, out
    outcomes = ["PASSED", "FAILED", "FAILED", "PASSED", "PASSED", "PASSED", "FAILED", "PASSED"]
    for cell, outcome in enumerate(outcomes):
        assert f"{outcome} tiny.ipynb::Cell {cell}" in out, out
    assert "stored 0.2600, new 0.2712" in out and "tolerance 0.002 (decimal)" in out, out


def test_number_kinds_follow_how_they_are_written():
    assert Number("1e-08", 1).kind == "decimal"
    assert Number("100%", 1).kind == "percent"
    assert Number("-3", 1).kind == "integer"


def test_the_quick_run_is_compared_with_the_quick_outputs(monkeypatch):
    cell = _cell("print(1)", "full\n", quick="quick\n")
    monkeypatch.setenv("MNIST_BOOK_QUICK", "1")
    assert [o["text"] for o in reference_outputs(cell)] == ["quick\n"]
    monkeypatch.setenv("MNIST_BOOK_QUICK", "0")
    assert [o["text"] for o in reference_outputs(cell)] == ["full\n"]
    monkeypatch.setenv("MNIST_BOOK_QUICK", "1")
    plain = _cell("print(1)", "full\n")
    assert [o["text"] for o in reference_outputs(plain)] == ["full\n"]


def test_skipped_patterns_leave_the_rest_compared():
    patterns = [r"[\d.]+ s$"]
    assert masked("epoch 1 loss 0.27   13.9 s\nepoch 2 loss 0.21    2.1 s", patterns) == (
        "epoch 1 loss 0.27   [...]\nepoch 2 loss 0.21    [...]"
    )
    outputs = [{"output_type": "stream", "name": "stdout", "text": "loss 0.27  9.5 s"}]
    assert mask_outputs(outputs, patterns)[0]["text"] == "loss 0.27  [...]"
    assert outputs[0]["text"] == "loss 0.27  9.5 s", "the outputs given are not changed"
