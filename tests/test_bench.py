"""The benchmark, ``python -m mnist_helpers.bench``: its dry run works end to end
and writes every figure; the work per sample is counted right. No timing is
asserted: speed depends on the machine."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from mnist_helpers.bench import flop_per_sample, format_table


def test_flop_per_sample_of_the_book_mlp():
    # forward 2 * 668,672 multiply-adds' worth, the weight gradients the same, and
    # the input gradients of the two layers after the first (not of the images)
    weights = 784 * 512 + 512 * 512 + 512 * 10
    assert flop_per_sample() == 4 * weights + 2 * (512 * 512 + 512 * 10) == 3_209_216
    assert flop_per_sample((784, 10)) == 4 * 7840


def _positive_numbers(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def dry_run(real_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-m", "mnist_helpers.bench", "--dry-run", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(path.read_text()), completed


def test_dry_run_prints_a_table_and_progress(dry_run):
    result, completed = dry_run
    assert "original" in completed.stdout and "compute only" in completed.stdout
    assert "DRY RUN" in completed.stdout
    # the recipes' unit: a whole epoch of the original notebook, as chapter 11 times it
    assert "one whole epoch of the original notebook, worker start included" in (
        completed.stdout
    )
    assert completed.stdout.strip() == format_table(result)
    progress = [line for line in completed.stderr.splitlines() if line.startswith("[bench]")]
    assert len(progress) >= 5 and progress[-1].startswith("[bench] wrote")


def test_dry_run_json_holds_every_figure(dry_run):
    result, _ = dry_run
    assert result["dry_run"] is True
    assert result["model"] == {"layers": [784, 512, 512, 10], "flop_per_sample": 3_209_216}
    assert set(result["pipelines"]) == {"original", "in_memory", "compute_only"}
    for row in result["pipelines"].values():
        assert set(row) == {
            "samples_per_second",
            "epoch_seconds",
            "vs_original",
            "fraction_of_peak",
        }
        assert all(_positive_numbers(v) for v in row.values()), row
    assert result["pipelines"]["original"]["vs_original"] == 1.0
    for key in ("sgemm_gflops", "peak_samples_per_second", "original_epoch_seconds"):
        assert _positive_numbers(result[key]), key
    assert set(result["recipes"]) == {"final", "speed"}
    for row in result["recipes"].values():
        assert all(_positive_numbers(row[k]) for k in ("seconds", "original_epochs")), row
        assert 0 <= row["test_accuracy"] <= 1 and isinstance(row["reaches_target"], bool)
        assert row["original_epochs"] == pytest.approx(
            row["seconds"] / result["original_epoch_seconds"]
        )
    assert result["recipes"]["speed"]["settings"]["batch_size"] > 0
    assert result["machine"]["cpu_cores"] >= 1


def test_bad_arguments_are_refused(capsys):
    from mnist_helpers.bench import main

    with pytest.raises(SystemExit):
        main(["--batches", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_speedrun_learns_a_tiny_problem_and_checks_its_input():
    import torch

    from mnist_helpers.speedrun import SPEED_RECIPE, SpeedRecipe, speedrun

    torch.manual_seed(0)
    X = torch.randn(256, 1, 28, 28)
    y = (X.flatten(1)[:, 0] > 0).long()  # the sign of the first pixel
    recipe = SpeedRecipe(**{**SPEED_RECIPE.__dict__, "epochs": 20, "batch_size": 64})
    model, seconds = speedrun(X, y, recipe)
    assert seconds > 0 and not model.training
    with torch.no_grad():
        assert (model(X).argmax(dim=1) == y).float().mean() > 0.95
    with pytest.raises(ValueError, match="256 samples but y has 255"):
        speedrun(X, y[:-1], recipe)


def test_dry_run_measures_data_parallel_training_beside_one_process(dry_run):
    result, completed = dry_run
    rows = result["data_parallel"]
    assert set(rows) == {"two_processes", "one_process"}
    assert rows["two_processes"]["processes"] == 2
    assert rows["two_processes"]["threads_per_process"] == 1  # torchrun's default
    assert rows["one_process"]["processes"] == 1
    for row in rows.values():
        assert row["steps"] == 3
        assert _positive_numbers(row["seconds"]) and _positive_numbers(row["samples_per_second"])
    assert "data parallel (CPU, batch 256)" in completed.stdout
