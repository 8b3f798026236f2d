"""mnist_helpers.training: train_epoch, evaluate and fit.

Most tests use a tiny learnable problem (three Gaussian blobs in 4 dimensions) so
they run in milliseconds; one checks learning on a small subset of the real MNIST.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mnist_helpers import MLP, TensorLoader, evaluate, fit, normalize, train_epoch
from mnist_helpers.checkpoints import best_path, read_checkpoint

HISTORY_KEYS = ["train_loss", "train_acc", "val_loss", "val_acc", "seconds"]


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    y = torch.arange(n) % 3
    X = centres[y] + 0.5 * torch.randn(n, 4, generator=generator)
    return X, y


def small_mlp(dropout: float = 0.0) -> MLP:
    return MLP(hidden_sizes=(16,), dropout=dropout, in_features=4, num_classes=3)


@pytest.fixture
def problem():
    torch.manual_seed(0)
    X, y = blobs(96, seed=1)
    X_val, y_val = blobs(48, seed=2)
    train_loader = TensorLoader(
        X, y, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    return train_loader, TensorLoader(X_val, y_val, batch_size=32)


# --- train_epoch ---------------------------------------------------------------------


def test_train_epoch_reduces_the_loss(problem):
    train_loader, _ = problem
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    results = [train_epoch(model, train_loader, optimizer) for _ in range(5)]
    losses, accuracies = zip(*results)
    assert losses[-1] < 0.5 * losses[0]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))
    assert accuracies[-1] > 0.9
    assert model.training


def test_train_epoch_learns_real_mnist(real_train):
    X, y = real_train
    X, y = normalize(X[:2048]), y[:2048]
    torch.manual_seed(0)
    model = MLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = TensorLoader(X, y, 128, shuffle=True, generator=torch.Generator().manual_seed(0))
    first_loss, first_acc = train_epoch(model, loader, optimizer)
    second_loss, second_acc = train_epoch(model, loader, optimizer)
    assert first_loss < math.log(10)  # below chance (cross-entropy of a uniform guess)
    assert second_loss < 0.75 * first_loss and second_acc > first_acc
    assert second_acc > 0.85


def test_train_epoch_returns_the_mean_loss_per_sample():
    X, y = blobs(20, seed=3)  # batches of 7, 7 and 6: the mean must weight by samples
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # parameters stay put
    loss, accuracy = train_epoch(model, TensorLoader(X, y, batch_size=7), optimizer)
    with torch.no_grad():
        logits = model(X)
    assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert accuracy == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_train_epoch_updates_the_parameters_and_steps_the_scheduler(problem):
    train_loader, _ = problem
    model = small_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    class CountingScheduler:
        steps = 0

        def step(self):
            self.steps += 1

    scheduler = CountingScheduler()
    train_epoch(model, train_loader, optimizer, scheduler=scheduler)
    assert scheduler.steps == len(train_loader) == 6  # once per batch
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_epoch_uses_the_given_loss_function(problem):
    train_loader, _ = problem
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    default, _ = train_epoch(model, train_loader, optimizer)
    summed, _ = train_epoch(model, train_loader, optimizer, nn.CrossEntropyLoss(reduction="sum"))
    assert summed == pytest.approx(16 * default, rel=1e-5)  # every batch holds 16 samples


def test_train_epoch_and_evaluate_equal_the_loop_chapter_3_writes_out(problem, states_equal):
    """The helpers are chapter 3's loop and validation, packaged: the same seed and
    data give bit-identical losses, accuracies and weights."""
    train_loader, val_loader = problem

    def setup():
        torch.manual_seed(0)
        model = small_mlp(dropout=0.3)
        optimizer = torch.optim.AdamW(model.parameters(), weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=0.05, epochs=2, steps_per_epoch=len(train_loader)
        )
        train_loader.generator.manual_seed(0)
        return model, optimizer, scheduler

    loss_fn = nn.CrossEntropyLoss()
    model, optimizer, scheduler = setup()
    written_out = []
    for _ in range(2):
        model.train()
        total_loss, correct = 0.0, 0
        for X, y in train_loader:
            optimizer.zero_grad()
            logits = model(X)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(dim=1) == y).sum().item()
        model.eval()
        val_loss, val_correct = 0.0, 0
        with torch.no_grad():
            for X, y in val_loader:
                logits = model(X)
                val_loss += loss_fn(logits, y).item() * len(y)
                val_correct += (logits.argmax(dim=1) == y).sum().item()
        n, n_val = len(train_loader.dataset), len(val_loader.dataset)
        written_out.append((total_loss / n, correct / n, val_loss / n_val, val_correct / n_val))

    helper, optimizer, scheduler = setup()
    packaged = []
    for _ in range(2):
        train_loss, train_acc = train_epoch(helper, train_loader, optimizer, scheduler=scheduler)
        result = evaluate(helper, val_loader)
        packaged.append((train_loss, train_acc, result.loss, result.accuracy))
    for ours, theirs in zip(packaged, written_out):
        assert ours[:3] == theirs[:3]  # the losses exactly, not approximately
        assert ours[3] == pytest.approx(theirs[3], abs=1e-7)  # (evaluate: a float32 mean)
    assert states_equal(helper, model)


# --- evaluate ------------------------------------------------------------------------


class FixedLogits(nn.Module):
    """Returns preset logits: input ``i`` (a sample index) gets row ``i``."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", logits)
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.logits[x.long()]


LOGITS = torch.tensor(
    [
        [3.0, 1.0, 0.0],  # true 0, predicted 0
        [0.0, 2.0, 1.0],  # true 0, predicted 1
        [0.5, 1.5, 0.0],  # true 1, predicted 1
        [0.0, 4.0, 0.0],  # true 1, predicted 1
        [0.0, 0.0, 1.0],  # true 2, predicted 2
        [2.0, 0.0, 1.0],  # true 2, predicted 0
        [0.0, 0.0, 5.0],  # true 2, predicted 2
    ]
)
TARGETS = torch.tensor([0, 0, 1, 1, 2, 2, 2])


def test_evaluate_with_fixed_logits():
    model = FixedLogits(LOGITS).train()
    loader = TensorLoader(torch.arange(7).float(), TARGETS, batch_size=3)
    result = evaluate(model, loader)
    assert result.predictions.tolist() == [0, 1, 1, 1, 2, 0, 2]
    assert result.targets.tolist() == TARGETS.tolist()
    assert result.accuracy == pytest.approx(5 / 7)
    torch.testing.assert_close(result.per_class_accuracy, torch.tensor([1 / 2, 2 / 2, 2 / 3]))
    assert result.loss == pytest.approx(F.cross_entropy(LOGITS, TARGETS).item(), rel=1e-6)
    torch.testing.assert_close(result.probabilities, LOGITS.softmax(dim=1))
    assert model.calls == [(False, False)] * 3  # eval mode, no gradients, every batch
    assert "accuracy=71.43%" in repr(result)


def test_evaluate_per_class_accuracy_of_an_absent_class_is_zero():
    logits = torch.cat([LOGITS, torch.zeros(7, 1)], dim=1)  # a 4th class never present
    result = evaluate(FixedLogits(logits), TensorLoader(torch.arange(7).float(), TARGETS, 4))
    assert result.per_class_accuracy.shape == (4,)
    assert result.per_class_accuracy[3] == 0


# --- fit -----------------------------------------------------------------------------


def test_fit_returns_the_history_and_logs_plain_lines(problem):
    train_loader, val_loader = problem
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    lines = []
    history = fit(model, train_loader, val_loader, optimizer, 3, log=lines.append)
    assert list(history) == HISTORY_KEYS
    assert all(len(values) == 3 for values in history.values())
    assert all(0 <= a <= 1 for a in history["train_acc"] + history["val_acc"])
    assert all(s > 0 for s in history["seconds"])
    assert history["val_loss"][-1] < history["val_loss"][0]

    assert len(lines) == 4
    best = min(history["val_loss"])
    for epoch, line in enumerate(lines[:3], start=1):
        assert line.startswith(f"epoch  {epoch}/3  train loss ")
        assert f"val loss {history['val_loss'][epoch - 1]:.4f}" in line
        improved = history["val_loss"][epoch - 1] < min(history["val_loss"][: epoch - 1] or [9e9])
        assert line.endswith("  *") == improved
    best_epoch = history["val_loss"].index(best) + 1
    assert lines[3] == f"restored the best model: epoch {best_epoch}, val loss {best:.4f}"
    assert all(line.isascii() and line.isprintable() for line in lines)  # no \r, no colours


def test_fit_prints_by_default_and_is_silent_with_log_none(problem, capsys):
    train_loader, val_loader = problem
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, train_loader, val_loader, optimizer, 1)
    assert capsys.readouterr().out.startswith("epoch  1/1  train loss ")
    fit(model, train_loader, val_loader, optimizer, 1, log=None)
    assert capsys.readouterr().out == ""


class SabotagedLoader:
    """The training data with true labels in the first epoch and wrong ones after it,
    so the first epoch is the best and every later one is worse."""

    def __init__(self, loader: TensorLoader, honest_epochs: int = 1):
        self.loader, self.honest_epochs, self.epoch = loader, honest_epochs, 0

    def __iter__(self):
        self.epoch += 1
        for X, y in self.loader:
            yield X, y if self.epoch <= self.honest_epochs else (y + 1) % 3


def _sabotaged_fit(problem, tmp_path, **kwargs):
    train_loader, val_loader = problem
    torch.manual_seed(0)
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    history = fit(
        model,
        SabotagedLoader(train_loader),
        val_loader,
        optimizer,
        3,
        checkpoint_path=tmp_path / "run.pt",
        log=None,
        **kwargs,
    )
    val_loss = history["val_loss"]
    assert val_loss[1] > val_loss[0] and val_loss[2] > val_loss[0]  # the case is as intended
    return model, history, val_loader


def test_fit_restores_the_best_model(problem, tmp_path, states_equal):
    model, history, val_loader = _sabotaged_fit(problem, tmp_path)
    best = read_checkpoint(best_path(tmp_path / "run.pt"))
    last = read_checkpoint(tmp_path / "run.pt")
    assert best_path(tmp_path / "run.pt") == tmp_path / "run.best.pt"
    assert best["epoch"] == 1 and last["epoch"] == 3
    assert states_equal(model, best["model"])
    assert not states_equal(model, last["model"])
    assert evaluate(model, val_loader).loss == pytest.approx(history["val_loss"][0], rel=1e-6)


def test_fit_keeps_the_last_model_without_restore_best(problem, tmp_path, states_equal):
    model, _, _ = _sabotaged_fit(problem, tmp_path, restore_best=False)
    assert states_equal(model, read_checkpoint(tmp_path / "run.pt")["model"])


def test_fit_restores_the_best_model_without_checkpoints(problem):
    train_loader, val_loader = problem
    torch.manual_seed(0)
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    history = fit(model, SabotagedLoader(train_loader), val_loader, optimizer, 3, log=None)
    assert history["val_loss"][2] > history["val_loss"][0]
    assert evaluate(model, val_loader).loss == pytest.approx(history["val_loss"][0], rel=1e-6)


def test_fit_resumed_keeps_the_best_model_from_before(problem, tmp_path, states_equal):
    _sabotaged_fit(problem, tmp_path)  # 3 epochs; the first is the best
    best = read_checkpoint(tmp_path / "run.best.pt")
    train_loader, val_loader = problem
    model = small_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    history = fit(
        model,
        SabotagedLoader(train_loader, honest_epochs=0),
        val_loader,
        optimizer,
        4,
        checkpoint_path=tmp_path / "run.pt",
        resume=True,
        log=None,
    )
    assert len(history["val_loss"]) == 4 and history["val_loss"][3] > history["val_loss"][0]
    assert states_equal(model, best["model"])
