"""Chapter 3's final recipe: the shifted loader and finding a finished run."""

from __future__ import annotations

import pytest
import torch

import mnist_helpers.recipe as recipe_module
from mnist_helpers import (
    FINAL_EPOCHS,
    MLP,
    ShiftedLoader,
    TensorLoader,
    load_final_model,
    save_checkpoint,
)


def _loader(seed=0):
    X = torch.zeros(6, 1, 28, 28)
    X[:, 0, 14, 14] = 1.0  # one lit pixel in the middle
    return TensorLoader(
        X, torch.arange(6), batch_size=2, generator=torch.Generator().manual_seed(seed)
    )


def _lit_pixels(loader):
    return [tuple(X[0, 0].nonzero()[0].tolist()) for X, _ in loader]


def test_shifted_loader_moves_each_batch_by_at_most_one_pixel():
    loader = ShiftedLoader(_loader())
    assert len(loader) == 3 and loader.generator is loader.loader.generator
    positions = _lit_pixels(loader) + _lit_pixels(loader) + _lit_pixels(loader)
    assert all(abs(r - 14) <= 1 and abs(c - 14) <= 1 for r, c in positions)
    assert len(set(positions)) > 1  # the shifts vary from batch to batch


def test_shifted_loader_is_reproducible_from_its_seed():
    assert _lit_pixels(ShiftedLoader(_loader(1))) == _lit_pixels(ShiftedLoader(_loader(1)))


def _run_checkpoints(tmp_path, epochs, best_epoch):
    model = MLP(hidden_sizes=(8,))
    val_loss = [1.0 / (e + 1) for e in range(epochs)]
    history = {"val_loss": val_loss}
    save_checkpoint(tmp_path / "mlp.pt", model, epoch=epochs, history=history)
    save_checkpoint(tmp_path / "mlp.best.pt", model, epoch=best_epoch, history=history)


@pytest.fixture
def trained(monkeypatch):
    """Replace the 20-second training with a stub that records its calls."""
    calls = []

    def fake_train(device, checkpoint_path):
        calls.append(checkpoint_path)
        return "trained model"

    monkeypatch.setattr(recipe_module, "train_final_model", fake_train)
    monkeypatch.setattr(recipe_module, "MLP", lambda: MLP(hidden_sizes=(8,)))
    return calls


def test_a_finished_run_is_loaded_not_trained(tmp_path, trained):
    _run_checkpoints(tmp_path, FINAL_EPOCHS, FINAL_EPOCHS)
    lines = []
    model = load_final_model(checkpoint_path=tmp_path / "mlp.pt", log=lines.append)
    assert isinstance(model, MLP) and trained == []
    assert lines == [f"Loaded {tmp_path / 'mlp.best.pt'} (epoch 12 of 12) on cpu"]


@pytest.mark.parametrize(
    "epochs, best_epoch",
    [(FINAL_EPOCHS - 1, FINAL_EPOCHS - 1), (FINAL_EPOCHS, FINAL_EPOCHS - 3), (None, None)],
    ids=["unfinished", "best-from-another-run", "missing"],
)
def test_otherwise_the_recipe_is_trained(tmp_path, trained, epochs, best_epoch):
    if epochs is not None:
        _run_checkpoints(tmp_path, epochs, best_epoch)
    lines = []
    assert (
        load_final_model(checkpoint_path=tmp_path / "mlp.pt", log=lines.append) == "trained model"
    )
    assert trained == [tmp_path / "mlp.pt"]
    assert "training it" in lines[0]
