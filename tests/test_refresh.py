"""The refresh's proof of a quiet machine (scripts/refresh_notebooks.py): a chapter is
stored only between two calibrations within the allowed slowdown of the machine's
best, with a provenance line written from the machine; a busy machine stores nothing
and exits non-zero. And the cross-chapter check of the stored figures
(scripts/stored_figures.py) on figures of its own. The notebooks, the calibration and
the figures are stand-ins here: no test measures or compares a time."""

from __future__ import annotations

import datetime
import json

import nbformat
import pytest
from test_student_edition import REFRESH, ROOT, code, load_script

refresh = load_script(REFRESH)
figures = load_script(ROOT / "scripts" / "stored_figures.py")


def _notebook(path):
    nbformat.write(nbformat.v4.new_notebook(cells=[code("print(6 * 7)")]), path)
    return path


@pytest.fixture
def stand_ins(monkeypatch, tmp_path):
    """The calibration returns the figures queued in ``gflops``; running a notebook
    only gives it an output; the records go to a temporary file."""
    gflops = []
    monkeypatch.setattr(
        refresh,
        "calibrate",
        lambda: {"gflops": gflops.pop(0), "threads": 2, "torch": "2.14.1"},
    )

    def run(path, timeout):
        notebook = nbformat.read(path, as_version=4)
        notebook.cells[0].outputs = [nbformat.v4.new_output("stream", text="42\n")]
        notebook.cells[0].execution_count = 1
        return notebook, 1.0

    monkeypatch.setattr(refresh, "run_notebook", run)
    monkeypatch.setattr(refresh, "CALIBRATIONS", tmp_path / "calibration.json")
    monkeypatch.setattr(refresh, "recorded_best", lambda key: 0.0)
    monkeypatch.setattr(refresh.stored_figures, "main", lambda argv: 0)
    return gflops


def test_a_quiet_chapter_is_stored_with_its_provenance(stand_ins, tmp_path, capsys):
    path = _notebook(tmp_path / "demo.ipynb")
    stand_ins += [100, 98, 99, 95, 97]  # three at the start, then before and after
    assert refresh.calibrated_refresh([path], 0.15, retries=0, timeout=60) == 0
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].outputs[0]["text"] == "42\n"
    assert cells[-1].id == refresh.PROVENANCE_ID
    line = cells[-1].source
    assert line.startswith(f"*Outputs stored on {datetime.date.today():%Y-%m-%d} with")
    assert "PyTorch 2.14.1" in line and "2 threads" in line
    assert "calibration 95 GFLOP/s before and 97 after" in line
    assert "calibration 95 before, 97 after (best 100)" in capsys.readouterr().out


def test_a_busy_machine_stores_nothing_and_fails(stand_ins, tmp_path, capsys):
    path = _notebook(tmp_path / "demo.ipynb")
    before = path.read_bytes()
    stand_ins += [100, 100, 100] + [100, 60] + [70, 100]  # each try slow once
    assert refresh.calibrated_refresh([path], 0.15, retries=1, timeout=60) == 1
    assert path.read_bytes() == before, "nothing is stored from a busy machine"
    out = capsys.readouterr().out
    assert out.count("BUSY: not stored") == 2
    assert "stayed busy in 2 tries" in out


def test_a_retry_on_a_quiet_machine_is_stored(stand_ins, tmp_path):
    path = _notebook(tmp_path / "demo.ipynb")
    stand_ins += [100, 100, 100] + [50, 100] + [99, 98]
    assert refresh.calibrated_refresh([path], 0.15, retries=1, timeout=60) == 0
    assert nbformat.read(path, as_version=4).cells[-1].id == refresh.PROVENANCE_ID


def test_the_provenance_line_is_replaced_not_added():
    notebook = nbformat.v4.new_notebook(cells=[code("x = 1")])
    refresh.set_provenance(notebook, "*first*")
    refresh.set_provenance(notebook, "*second*")
    assert [c.source for c in notebook.cells[1:]] == ["*second*"]


def test_quiet_is_the_stated_fraction_of_the_best():
    assert refresh.quiet(85.0, 100.0, 0.15)
    assert not refresh.quiet(84.9, 100.0, 0.15)


def test_the_best_is_recorded_per_machine_and_only_raised(tmp_path):
    path = tmp_path / "calibration.json"
    refresh.record_best("cpu A", 120.0, path)
    refresh.record_best("cpu A", 90.0, path)  # lower: kept at 120
    refresh.record_best("cpu B", 40.0, path)
    assert refresh.recorded_best("cpu A", path) == 120.0
    assert refresh.recorded_best("cpu B", path) == 40.0
    assert refresh.recorded_best("cpu C", path) == 0.0
    assert set(json.loads(path.read_text())) == {"cpu A", "cpu B"}


def test_the_calibration_runs_in_a_process_of_its_own():
    result = refresh.calibrate(runs=1)
    assert result["gflops"] > 0 and result["threads"] >= 1
    assert result["torch"][0].isdigit()


def test_a_failing_chapter_is_not_stored_and_the_rest_go_on(
    stand_ins, tmp_path, capsys, monkeypatch
):
    broken, fine = tmp_path / "broken.ipynb", _notebook(tmp_path / "fine.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[code("raise ValueError")]), broken)
    before = broken.read_bytes()
    run = refresh.run_notebook

    def failing(path, timeout):
        if path == broken:
            raise RuntimeError("a hidden check failed")
        return run(path, timeout)

    monkeypatch.setattr(refresh, "run_notebook", failing)
    stand_ins += [100, 100, 100] + [100] + [100, 100]
    assert refresh.calibrated_refresh([broken, fine], 0.15, retries=0, timeout=60) == 1
    assert broken.read_bytes() == before
    assert nbformat.read(fine, as_version=4).cells[-1].id == refresh.PROVENANCE_ID
    assert "broken.ipynb: FAILED, nothing stored" in capsys.readouterr().out


def _figures(**changes):
    """Figures that obey every rule, with ``changes`` (by position in FIGURES)."""
    names = list(figures.FIGURES)
    values = {
        0: 5000, 1: 5200, 2: 15000, 3: 25000, 4: 2.0, 5: 5100, 6: 15500, 7: 24000,
        8: 16000, 9: 26000, 10: 23000, 11: 150, 12: 2.2,
    }  # fmt: skip
    values.update({int(k[1:]): v for k, v in changes.items()})
    return {names[i]: v for i, v in values.items()}


def test_figures_that_agree_pass():
    assert figures.check(_figures()) == []


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"f1": 1400}, "not in one range"),  # a DataLoader timed 3.6x slower elsewhere
        ({"f10": 600}, "not in one range"),  # chapter 9's epoch from a loaded machine
        ({"f4": 13.4}, "not in one range"),  # chapter 4's epochs against chapter 12's
        ({"f2": 4000, "f6": 4100}, "not faster"),  # "faster" path below its baseline
        ({"f7": 40000}, "above its ceiling"),  # in memory beats compute only
        ({"f11": None}, "not found"),
    ],
)
def test_figures_that_contradict_each_other_are_named(changes, problem):
    found = figures.check(_figures(**changes))
    assert any(problem in line for line in found), found


def test_figures_are_read_from_stored_outputs(tmp_path):
    cell = code("", outputs=[nbformat.v4.new_output("stream", text=(
        "DataLoader      1,416 images/s  validation accuracy 86.2%\n"
        "TensorLoader    2,684 images/s  validation accuracy 87.8%\n"))], count=1)  # fmt: skip
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "04_faster.ipynb")
    read = figures.read_figures(tmp_path)
    assert read["04 DataLoader, batch 32, training (images/s)"] == 1416
    assert read["04 in memory, batch 32, training (images/s)"] == 2684
    assert read["03 DataLoader, batch 32, training (images/s)"] is None


def test_quick_outputs_are_kept_where_the_quick_run_differs(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_BOOK_QUICK", "0")
    path = tmp_path / "quick_demo.ipynb"
    source = 'import os\nprint("quick" if os.environ["MNIST_BOOK_QUICK"] == "1" else "full")'
    notebook = nbformat.v4.new_notebook(cells=[code(source), code("print(42)")])
    nbformat.write(notebook, path)
    refresh.refresh(path)  # the full run, stored
    assert refresh.store_quick_outputs(path) == 1
    varies, same = nbformat.read(path, as_version=4).cells
    assert varies.outputs[0]["text"] == "full\n", "the stored output stays the full run's"
    assert [o["text"] for o in varies.metadata["quick_outputs"]] == ["quick\n"]
    assert "quick_outputs" not in same.metadata
    assert refresh.has_quick_run(nbformat.read(path, as_version=4))
