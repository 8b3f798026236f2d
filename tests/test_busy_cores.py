"""benchmarks/busy_cores.py refuses figures from a busy machine, as the refresh does."""

import importlib.util
import json
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def busy_cores(monkeypatch, tmp_path):
    """The script as a module, with a calibration that returns ``gflops`` in turn and
    a machine whose recorded best is 100 GFLOP/s, and without measuring anything."""
    spec = importlib.util.spec_from_file_location(
        "busy_cores", ROOT / "benchmarks" / "busy_cores.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    refresh = module.refresh_module()
    calibrations = []
    best_file = tmp_path / "calibration.json"
    fake = types.SimpleNamespace(
        calibrate=lambda: {"gflops": calibrations.pop(0), "threads": 2, "torch": "x"},
        machine_key=lambda calibration: "this machine",
        record_best=lambda key, gflops: refresh.record_best(key, gflops, best_file),
        recorded_best=lambda key: refresh.recorded_best(key, best_file),
        quiet=refresh.quiet,
    )
    refresh.record_best("this machine", 100.0, best_file)
    monkeypatch.setattr(module, "refresh_module", lambda: fake)
    monkeypatch.setattr(module, "run", lambda busy, repeats, seconds: {"rows": 1})
    monkeypatch.setattr(module, "format_table", lambda result: "the table")
    module.calibrations = calibrations
    return module


def test_a_quiet_run_is_written_with_its_calibration(busy_cores, tmp_path, capsys):
    busy_cores.calibrations[:] = [95.0, 90.0]
    out = tmp_path / "run.json"
    assert busy_cores.main(["--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["calibration"] == {
        "before_gflops": 95.0,
        "after_gflops": 90.0,
        "best_gflops": 100.0,
        "max_slowdown": 0.15,
    }
    assert "calibration 95 GFLOP/s before, 90 after, best 100" in capsys.readouterr().out


@pytest.mark.parametrize("before, after", [(80.0, 95.0), (95.0, 80.0)])
def test_a_busy_run_is_refused_and_nothing_is_written(busy_cores, tmp_path, capsys, before, after):
    busy_cores.calibrations[:] = [before, after]
    out = tmp_path / "run.json"
    assert busy_cores.main(["--json", str(out)]) == 1
    assert not out.exists()
    assert "the machine was busy" in capsys.readouterr().err


def test_a_crowded_run_on_purpose_needs_max_slowdown(busy_cores, tmp_path):
    busy_cores.calibrations[:] = [30.0, 20.0]
    out = tmp_path / "run.json"
    assert busy_cores.main(["--json", str(out), "--max-slowdown", "1"]) == 0
    assert json.loads(out.read_text())["calibration"]["max_slowdown"] == 1.0
