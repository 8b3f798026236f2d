"""mnist_helpers.recipe: the final recipe trained for real on tiny data (its epochs
reduced), finding and loading a finished run, and ``python -m mnist_helpers.recipe``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import mnist_helpers.data as data_module
import mnist_helpers.recipe as recipe_module
from mnist_helpers import (
    FINAL_RECIPE,
    MLP,
    CheckpointError,
    ShiftedLoader,
    TensorLoader,
    load_final_model,
    load_tensors,
    normalize,
    save_checkpoint,
    seed_everything,
    train_final_model,
    train_val_split,
)
from mnist_helpers.checkpoints import best_path, read_checkpoint

#: The final recipe with fewer epochs and smaller batches, for a few tiny images.
TINY_RECIPE = dataclasses.replace(FINAL_RECIPE, epochs=2, batch_size=4)


@pytest.fixture
def tiny_recipe(tiny_mnist, monkeypatch, tmp_path):
    """The tiny MNIST in the one data location, FINAL_RECIPE reduced to TINY_RECIPE,
    and a checkpoint path in a fresh folder."""
    monkeypatch.setenv("MNIST_DATA_DIR", str(tiny_mnist.root))
    monkeypatch.setattr(recipe_module, "FINAL_RECIPE", TINY_RECIPE)
    return tmp_path / "checkpoints" / "mlp.pt"


def _written_out(recipe):
    """Chapter 4's final recipe, step by step: normalised tensors, the seeded split,
    shifted shuffled batches, AdamW with one-cycle, the best epoch by validation loss."""
    images, labels = load_tensors(train=True)
    X_all = normalize(images)
    train_idx, val_idx = train_val_split(len(labels), len(labels) // 6)
    g = seed_everything(recipe.seed)
    loader = TensorLoader(
        X_all[train_idx], labels[train_idx], recipe.batch_size, shuffle=True, generator=g
    )
    train_loader = ShiftedLoader(loader, max_shift=recipe.max_shift)
    X_val, y_val = X_all[val_idx], labels[val_idx]
    model = MLP()
    optimizer = torch.optim.AdamW(model.parameters(), weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.max_lr, epochs=recipe.epochs, steps_per_epoch=len(train_loader)
    )
    loss_fn = nn.CrossEntropyLoss()
    best_loss, best_state = float("inf"), None
    for _ in range(recipe.epochs):
        model.train()
        for X, y in train_loader:
            optimizer.zero_grad()
            loss_fn(model(X), y).backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model


def test_train_final_model_is_the_recipe_written_out(tiny_recipe, states_equal):
    lines = []
    model = train_final_model(checkpoint_path=tiny_recipe, log=lines.append)
    assert states_equal(model, _written_out(TINY_RECIPE))
    assert [line[:10] for line in lines[:2]] == ["epoch  1/2", "epoch  2/2"]
    assert read_checkpoint(tiny_recipe)["epoch"] == TINY_RECIPE.epochs
    assert best_path(tiny_recipe).is_file()


@pytest.mark.parametrize(
    "setting, value",
    [
        ("epochs", 3),
        ("batch_size", 3),
        ("max_lr", 1e-2),
        ("weight_decay", 0.5),
        ("seed", 1),
        ("max_shift", 3),
    ],
)
def test_train_final_model_reads_every_setting_from_the_recipe(
    tiny_recipe, monkeypatch, states_equal, setting, value
):
    baseline = train_final_model(checkpoint_path=tiny_recipe)
    changed = dataclasses.replace(TINY_RECIPE, **{setting: value})
    monkeypatch.setattr(recipe_module, "FINAL_RECIPE", changed)
    other = train_final_model(checkpoint_path=tiny_recipe.with_name("other.pt"))
    assert not states_equal(baseline, other)
    assert states_equal(other, _written_out(changed))


# --- load_final_model ------------------------------------------------------------------


def test_load_final_model_trains_when_alone_then_loads(tiny_recipe, states_equal):
    lines = []
    trained = load_final_model(checkpoint_path=tiny_recipe, log=lines.append)
    assert lines[0] == (f"No finished run of chapter 4 in {tiny_recipe.parent}: training it on cpu")
    assert states_equal(trained, _written_out(TINY_RECIPE))

    lines.clear()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    loaded = load_final_model(checkpoint_path=tiny_recipe, log=lines.append)
    assert torch.equal(torch.rand(3), expected)  # loading left the random state alone
    best_epoch = read_checkpoint(best_path(tiny_recipe))["epoch"]
    assert lines == [f"Loaded {best_path(tiny_recipe)} (epoch {best_epoch} of 2) on cpu"]
    assert states_equal(loaded, trained)


def test_an_unfinished_run_is_trained_again(tiny_recipe, states_equal):
    model = MLP()
    save_checkpoint(tiny_recipe, model, epoch=1, history={"val_loss": [0.5]})
    save_checkpoint(best_path(tiny_recipe), model, epoch=1, history={"val_loss": [0.5]})
    lines = []
    trained = load_final_model(checkpoint_path=tiny_recipe, log=lines.append)
    assert "training it" in lines[0]
    assert states_equal(trained, _written_out(TINY_RECIPE))
    assert read_checkpoint(tiny_recipe)["epoch"] == TINY_RECIPE.epochs


def test_a_best_file_from_another_run_is_trained_again(tiny_recipe):
    train_final_model(checkpoint_path=tiny_recipe)
    save_checkpoint(best_path(tiny_recipe), MLP(), epoch=7)
    lines = []
    load_final_model(checkpoint_path=tiny_recipe, log=lines.append)
    assert "training it" in lines[0]


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda paths: _truncate(paths[1]), "mlp.best.pt is not a readable checkpoint"),
        (lambda paths: _truncate(paths[0]), "mlp.pt is not a readable checkpoint"),
        (
            lambda paths: torch.save({"history": {}}, paths[1]),
            "mlp.best.pt is not a checkpoint written by",
        ),
        (
            lambda paths: save_checkpoint(
                paths[1], MLP(hidden_sizes=(16,)), epoch=read_checkpoint(paths[1])["epoch"]
            ),
            "different architecture",
        ),
    ],
    ids=["truncated-best", "truncated-last", "foreign-best", "other-architecture"],
)
def test_a_damaged_or_foreign_file_raises_checkpoint_error(tiny_recipe, damage, match):
    train_final_model(checkpoint_path=tiny_recipe)
    damage((tiny_recipe, best_path(tiny_recipe)))
    with pytest.raises(CheckpointError, match=match) as info:
        load_final_model(checkpoint_path=tiny_recipe, log=None)
    assert any(remedy in str(info.value) for remedy in ("train", "Delete", "delete"))


# --- python -m mnist_helpers.recipe ------------------------------------------------------


def test_the_command_runs_cleanly():
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "mnist_helpers.recipe", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning from runpy about an imported module
    assert "--device" in result.stdout and "--checkpoint" in result.stdout


def test_the_command_retrains_the_final_model(tiny_mnist, tmp_path, monkeypatch, states_equal):
    """The command's ``main`` (what ``python -m mnist_helpers.recipe`` runs) in a new
    process on the tiny MNIST, after accepting the tiny files' checksums and reducing
    the epochs (the only changes)."""
    checkpoint = tmp_path / "out" / "mlp.pt"
    program = textwrap.dedent(
        f"""
        import torch
        import mnist_helpers.data as data
        import mnist_helpers.recipe as recipe
        from mnist_helpers.data import MNISTFile
        data.MNIST_FILES = {data_module.MNIST_FILES!r}
        torch.set_num_threads(1)  # as in these tests (see conftest.py)
        recipe.FINAL_RECIPE = recipe.{TINY_RECIPE!r}
        argv = ["--device", "cpu", "--checkpoint", {str(checkpoint)!r}]
        raise SystemExit(recipe.main(argv))
        """
    )
    env = {**os.environ, "MNIST_DATA_DIR": str(tiny_mnist.root)}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Training the final recipe on cpu: 2 epochs, batches of 4")
    assert [line[:10] for line in lines[1:3]] == ["epoch  1/2", "epoch  2/2"]  # progress
    assert lines[-2] == f"Saved {checkpoint} and {best_path(checkpoint)}"
    assert lines[-1].startswith("Test accuracy of the best model: ")
    monkeypatch.setenv("MNIST_DATA_DIR", str(tiny_mnist.root))
    assert states_equal(MLP.from_checkpoint(best_path(checkpoint)), _written_out(TINY_RECIPE))
