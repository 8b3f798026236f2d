"""mnist_helpers.checkpoints: atomic saving, safe loading and exact resuming."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mnist_helpers.checkpoints as checkpoints_module
from mnist_helpers import MLP, CheckpointError, TensorLoader, fit, load_checkpoint, save_checkpoint


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _trained(hidden_sizes=(32, 16), seed=0):
    """A small MLP and an Adam optimizer after one step (so it has state)."""
    torch.manual_seed(seed)
    model = MLP(hidden_sizes=hidden_sizes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    nn.functional.cross_entropy(model(torch.rand(4, 784)), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    return model, optimizer


def _listing(folder):
    return sorted(path.name for path in folder.iterdir())


def test_round_trip(tmp_path):
    model, optimizer = _trained()
    history = {"train_loss": [0.5, 0.25], "val_acc": [0.9, 0.95]}
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, optimizer, 2, history)
    assert path == tmp_path / "sub" / "model.pt" and _listing(path.parent) == ["model.pt"]

    # A plain dictionary of tensors and numbers: loads with weights_only=True.
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 2 and raw["history"] == history

    other, other_optimizer = _trained(seed=1)
    assert not _states_equal(other.state_dict(), model.state_dict())
    checkpoint = load_checkpoint(path, other, other_optimizer)
    assert _states_equal(other.state_dict(), model.state_dict())
    assert checkpoint["epoch"] == 2 and checkpoint["history"] == history
    saved, restored = optimizer.state_dict(), other_optimizer.state_dict()
    assert saved["param_groups"] == restored["param_groups"]
    for key, state in saved["state"].items():
        assert _states_equal(state, restored["state"][key])


def test_round_trip_of_scheduler_generator_and_random_state(tmp_path):
    model, optimizer = _trained()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    optimizer.step()
    scheduler.step()
    generator = torch.Generator().manual_seed(5)
    torch.randperm(10, generator=generator)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 1, {}, scheduler, generator)
    expected_perm = torch.randperm(10, generator=generator)
    expected_rand = torch.rand(3)

    torch.manual_seed(99)
    new_model, new_optimizer = _trained(seed=3)
    new_scheduler = torch.optim.lr_scheduler.StepLR(new_optimizer, step_size=1, gamma=0.5)
    new_generator = torch.Generator().manual_seed(6)
    load_checkpoint(tmp_path / "c.pt", new_model, new_optimizer, new_scheduler, new_generator)
    assert torch.equal(torch.rand(3), expected_rand)  # torch's global random state
    assert torch.equal(torch.randperm(10, generator=new_generator), expected_perm)
    assert new_scheduler.state_dict() == scheduler.state_dict()
    assert new_optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_loading_into_another_architecture_names_the_mismatch(tmp_path):
    model, _ = _trained(hidden_sizes=(32, 16))
    save_checkpoint(tmp_path / "model.pt", model)
    other = MLP(hidden_sizes=(64,))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "model.pt", other)
    message = str(info.value)
    assert str(tmp_path / "model.pt") in message and "different architecture" in message
    assert "hidden.0.weight: checkpoint (32, 784), model (64, 784)" in message
    assert "output.weight: checkpoint (10, 16), model (10, 64)" in message
    assert "hidden.1.weight: in the checkpoint, not in the model" in message
    assert "hidden sizes" in message  # the remedy
    assert _states_equal(other.state_dict(), before)  # untouched


def test_missing_layers_are_named(tmp_path):
    save_checkpoint(tmp_path / "model.pt", MLP(hidden_sizes=(16,)))
    with pytest.raises(CheckpointError, match="hidden.1.bias: missing from the checkpoint"):
        load_checkpoint(tmp_path / "model.pt", MLP(hidden_sizes=(16, 16)))


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage, match",
    [
        (_truncated, "not a readable checkpoint"),
        (lambda path: path.write_bytes(b"\x00garbage" * 100), "not a readable checkpoint"),
        (lambda path: path.write_bytes(b""), "not a readable checkpoint"),
        (lambda path: torch.save(torch.zeros(3), path), "not a checkpoint written by"),
        (lambda path: torch.save({"weights": torch.zeros(3)}, path), "not a checkpoint written"),
        (lambda path: path.unlink(), "No checkpoint at"),
    ],
    ids=["truncated", "garbage", "empty", "a-tensor", "another-dict", "missing"],
)
def test_unreadable_checkpoint_raises_and_leaves_the_model_untouched(tmp_path, damage, match):
    model, optimizer = _trained()
    path = save_checkpoint(tmp_path / "model.pt", model, optimizer, 1)
    damage(path)
    other, other_optimizer = _trained(seed=1)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, other, other_optimizer)
    assert str(path) in str(info.value)
    assert _states_equal(other.state_dict(), before)


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    old_model, _ = _trained(seed=0)
    path = save_checkpoint(tmp_path / "model.pt", old_model, epoch=1)
    old_bytes = path.read_bytes()

    def interrupted_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first bytes of a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(checkpoints_module.torch, "save", interrupted_save)
    new_model, _ = _trained(seed=1)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, new_model, epoch=2)
    monkeypatch.undo()

    assert path.read_bytes() == old_bytes
    assert _listing(tmp_path) == ["model.pt"]  # no temporary file left behind
    model = MLP(hidden_sizes=(32, 16))
    assert load_checkpoint(path, model)["epoch"] == 1
    assert _states_equal(model.state_dict(), old_model.state_dict())


# --- resuming equals an uninterrupted run --------------------------------------------

NUM_EPOCHS = 4


def _run(tmp_path, num_epochs, checkpoint_path=None, resume=False, seed=0):
    """A seeded training run with dropout, shuffling and a OneCycleLR schedule planned
    for NUM_EPOCHS epochs; fresh objects every time, as in a new session."""
    data = torch.Generator().manual_seed(42)  # the same data in every run
    X, X_val = torch.rand(192, 784, generator=data), torch.rand(64, 784, generator=data)
    y, y_val = torch.arange(192) % 10, torch.arange(64) % 10
    torch.manual_seed(seed)
    model = MLP(hidden_sizes=(64, 32), dropout=0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = TensorLoader(
        X, y, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.1, epochs=NUM_EPOCHS, steps_per_epoch=len(loader)
    )
    lines = []
    history = fit(
        model,
        loader,
        TensorLoader(X_val, y_val, batch_size=64),
        optimizer,
        num_epochs,
        scheduler=scheduler,
        checkpoint_path=checkpoint_path,
        resume=resume,
        log=lines.append,
    )
    return history, model, lines


def test_resume_equals_an_uninterrupted_run(tmp_path):
    full, full_model, _ = _run(tmp_path, NUM_EPOCHS)

    path = tmp_path / "checkpoints" / "run.pt"
    first, _, _ = _run(tmp_path, 2, checkpoint_path=path)
    assert torch.load(path, weights_only=True)["epoch"] == 2
    # A new session: different global seed, fresh model, optimizer, scheduler and loader.
    resumed, resumed_model, lines = _run(tmp_path, NUM_EPOCHS, path, resume=True, seed=1)

    assert lines[0] == "resumed from run.pt after epoch 2"
    assert len(lines) == 1 + 2 + 1  # resumed, epochs 3 and 4, restored
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert first[key] == full[key][:2]
        assert resumed[key] == full[key]  # exactly, not approximately
    assert len(set(full["train_loss"])) == NUM_EPOCHS  # training really moved
    assert _states_equal(resumed_model.state_dict(), full_model.state_dict())


def test_resume_of_a_finished_run_trains_no_more(tmp_path):
    path = tmp_path / "run.pt"
    full, full_model, _ = _run(tmp_path, NUM_EPOCHS, checkpoint_path=path)
    again, again_model, lines = _run(tmp_path, NUM_EPOCHS, path, resume=True, seed=1)
    assert lines[0] == f"resumed from run.pt after epoch {NUM_EPOCHS}"
    assert not any(line.startswith("epoch") for line in lines)
    assert again["val_loss"] == full["val_loss"]
    assert _states_equal(again_model.state_dict(), full_model.state_dict())  # the best one


def test_without_resume_an_existing_checkpoint_is_ignored(tmp_path):
    path = tmp_path / "run.pt"
    _run(tmp_path, 2, checkpoint_path=path, seed=3)
    history, _, lines = _run(tmp_path, 2, checkpoint_path=path)
    fresh, _, _ = _run(tmp_path, 2)
    assert not lines[0].startswith("resumed")
    assert history["val_loss"] == fresh["val_loss"]


def test_an_optimizer_of_another_kind_raises_and_leaves_the_model_untouched(tmp_path):
    saved = MLP(hidden_sizes=(8,))
    adam = torch.optim.Adam(saved.parameters())
    path = save_checkpoint(tmp_path / "adam.pt", saved, adam)
    model = MLP(hidden_sizes=(8,))
    before = {name: t.clone() for name, t in model.state_dict().items()}
    sgd_with_other_groups = torch.optim.SGD(
        [{"params": model.hidden.parameters()}, {"params": model.output.parameters()}], lr=0.1
    )
    with pytest.raises(CheckpointError, match="optimizer state does not fit"):
        load_checkpoint(path, model, sgd_with_other_groups)
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
