"""mnist_helpers.checkpoints: the checkpoint format, atomic saving, safe loading,
rebuilding a model from its file, and resuming a run exactly (``fit(resume=True)``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mnist_helpers.checkpoints as checkpoints_module
from mnist_helpers import MLP, CheckpointError, TensorLoader, fit, load_checkpoint, save_checkpoint
from mnist_helpers.checkpoints import best_path, model_from_checkpoint, read_checkpoint


def _trained(hidden_sizes=(32, 16), seed=0, dropout=0.2):
    """A small MLP and an Adam optimizer after one step (so it has state)."""
    torch.manual_seed(seed)
    model = MLP(hidden_sizes=hidden_sizes, dropout=dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    nn.functional.cross_entropy(model(torch.rand(4, 784)), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    return model, optimizer


def _listing(folder):
    return sorted(path.name for path in folder.iterdir())


def _clone(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def _edit(path, change):
    """Rewrite the checkpoint at ``path`` with ``change(dict)`` applied."""
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, path)


# --- the format ---------------------------------------------------------------------------


def test_round_trip(tmp_path, states_equal):
    model, optimizer = _trained()
    history = {"train_loss": [0.5, 0.25], "val_acc": [0.9, 0.95]}
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, optimizer, 2, history)
    assert path == tmp_path / "sub" / "model.pt" and _listing(path.parent) == ["model.pt"]

    # Only tensors, numbers, strings, lists and dictionaries: loads with weights_only=True.
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 2 and raw["history"] == history
    assert raw["model_config"] == {
        "hidden_sizes": [32, 16],
        "dropout": 0.2,
        "in_features": 784,
        "num_classes": 10,
    }

    other, other_optimizer = _trained(seed=1)
    assert not states_equal(other, model)
    checkpoint = load_checkpoint(path, other, other_optimizer)
    assert states_equal(other, model)
    assert checkpoint["epoch"] == 2 and checkpoint["history"] == history
    saved, restored = optimizer.state_dict(), other_optimizer.state_dict()
    assert saved["param_groups"] == restored["param_groups"]
    for key, state in saved["state"].items():
        assert states_equal(state, restored["state"][key])


def test_best_path_is_next_to_the_checkpoint(tmp_path):
    assert best_path("checkpoints/mlp.pt").as_posix() == "checkpoints/mlp.best.pt"
    assert best_path(tmp_path / "run") == tmp_path / "run.best.pt"


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
    load_checkpoint(
        tmp_path / "c.pt", new_model, new_optimizer, new_scheduler, new_generator, restore_rng=True
    )
    assert torch.equal(torch.rand(3), expected_rand)  # torch's global random state
    assert torch.equal(torch.randperm(10, generator=new_generator), expected_perm)
    assert new_scheduler.state_dict() == scheduler.state_dict()
    assert new_optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_loading_to_evaluate_leaves_the_random_state_alone(tmp_path):
    model, optimizer = _trained()
    path = save_checkpoint(tmp_path / "c.pt", model, optimizer, 1)
    torch.rand(5)  # the random state moves on after saving

    other = MLP(hidden_sizes=(32, 16))
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_checkpoint(path, other)
    MLP.from_checkpoint(path)
    assert torch.equal(torch.rand(3), expected)

    torch.manual_seed(7)
    load_checkpoint(path, other, restore_rng=True)
    assert not torch.equal(torch.rand(3), expected)  # restored: the saved state, not seed 7


def test_from_checkpoint_rebuilds_the_model_from_the_file_alone(tmp_path, states_equal):
    model, _ = _trained(hidden_sizes=(24, 12, 6), dropout=0.35)
    path = save_checkpoint(tmp_path / "model.pt", model)
    rebuilt = MLP.from_checkpoint(path)
    assert isinstance(rebuilt, MLP) and rebuilt.config == model.config
    assert rebuilt.dropout.p == 0.35 and [layer.out_features for layer in rebuilt.hidden] == [
        24,
        12,
        6,
    ]
    assert states_equal(rebuilt, model)
    assert not rebuilt.training  # ready to evaluate
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model.eval()(x))
    assert MLP(**rebuilt.config).config == model.config


def _as_version_1(checkpoint):
    """The layout saved before checkpoints described their model."""
    for key in list(checkpoint):
        if key == "format_version" or key.endswith(("_class", "_config")):
            del checkpoint[key]


def test_files_of_the_first_format_still_load(tmp_path, states_equal):
    model, optimizer = _trained()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    path = save_checkpoint(tmp_path / "old.pt", model, optimizer, 3, {"val_loss": [1.0]}, scheduler)
    _edit(path, _as_version_1)
    other, other_optimizer = _trained(seed=1)
    other_scheduler = torch.optim.lr_scheduler.StepLR(other_optimizer, step_size=1)
    assert load_checkpoint(path, other, other_optimizer, other_scheduler)["epoch"] == 3
    assert states_equal(other, model)
    with pytest.raises(CheckpointError, match="does not describe its model") as info:
        MLP.from_checkpoint(path)
    assert "load_checkpoint(path, model)" in str(info.value)  # the remedy
    wrong_kind = torch.optim.lr_scheduler.ExponentialLR(other_optimizer, gamma=0.9)
    with pytest.raises(CheckpointError, match="scheduler state does not fit"):
        load_checkpoint(path, other, scheduler=wrong_kind)


def test_from_checkpoint_refuses_another_kind_of_model(tmp_path):
    class Tiny(nn.Module):
        def __init__(self, width=3):
            super().__init__()
            self.layer = nn.Linear(2, width)

        @property
        def config(self):
            return {"width": self.layer.out_features}

    path = save_checkpoint(tmp_path / "tiny.pt", Tiny(width=5))
    assert model_from_checkpoint(Tiny, path).layer.out_features == 5
    with pytest.raises(CheckpointError, match="holds a Tiny, not a MLP"):
        MLP.from_checkpoint(path)


def test_from_checkpoint_with_a_description_that_builds_nothing(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", MLP(hidden_sizes=(8,)))
    _edit(path, lambda c: c["model_config"].update(depth=3))
    with pytest.raises(CheckpointError, match="does not build a MLP"):
        MLP.from_checkpoint(path)


# --- safe loading: damaged, foreign, newer and unfitting files ----------------------------


class Surprise:
    def __reduce__(self):  # pickle would call print(...) while loading
        return (print, ("this ran while loading",))


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _with(**changes):
    return lambda path: _edit(path, lambda c: c.update(changes))


@pytest.mark.parametrize(
    "damage, match",
    [
        (_truncated, "not a readable checkpoint"),
        (lambda path: path.write_bytes(b"\x00garbage" * 100), "not a readable checkpoint"),
        (lambda path: path.write_bytes(b""), "not a readable checkpoint"),
        (lambda path: torch.save({"model": Surprise()}, path), "not a readable checkpoint"),
        (lambda path: torch.save(torch.zeros(3), path), "not a checkpoint written by"),
        (lambda path: torch.save({"weights": torch.zeros(3)}, path), "not a checkpoint written"),
        (_with(model=3), "'model' is not a dictionary of named tensors"),
        (_with(model={"w": [1, 2]}), "'model' is not a dictionary of named tensors"),
        (_with(epoch="two"), "'epoch' is 'two'"),
        (lambda path: _edit(path, lambda c: c.pop("history")), "'history' is not a dictionary"),
        (_with(history=[0.1]), "'history' is not a dictionary"),
        (_with(format_version=99), "newer version of mnist_helpers"),
        (lambda path: path.unlink(), "No checkpoint at"),
    ],
    ids=[
        "truncated",
        "garbage",
        "empty",
        "code",
        "a-tensor",
        "another-dict",
        "model-not-a-dict",
        "model-not-tensors",
        "epoch",
        "no-history",
        "history-a-list",
        "newer",
        "missing",
    ],
)
def test_unusable_file_raises_and_leaves_everything_untouched(tmp_path, damage, match, capfd):
    model, optimizer = _trained()
    path = save_checkpoint(tmp_path / "model.pt", model, optimizer, 1)
    damage(path)
    other, other_optimizer = _trained(seed=1)
    before, optimizer_before = _clone(other), repr(other_optimizer.state_dict())
    torch.manual_seed(3)
    for load in (
        lambda: load_checkpoint(path, other, other_optimizer, restore_rng=True),
        lambda: MLP.from_checkpoint(path),
        lambda: read_checkpoint(path),
    ):
        with pytest.raises(CheckpointError, match=match) as info:
            load()
        message = str(info.value)
        assert str(path) in message
        assert any(remedy in message for remedy in ("rain", "Save", "Upgrade"))  # a remedy
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(1))  # the random state was not touched
    assert all(torch.equal(t, before[k]) for k, t in other.state_dict().items())
    assert repr(other_optimizer.state_dict()) == optimizer_before
    assert "this ran" not in capfd.readouterr().out  # the code in the file never ran


def test_loading_into_another_architecture_names_the_mismatch(tmp_path, states_equal):
    model, _ = _trained(hidden_sizes=(32, 16))
    save_checkpoint(tmp_path / "model.pt", model)
    other = MLP(hidden_sizes=(64,))
    before = _clone(other)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "model.pt", other)
    message = str(info.value)
    assert str(tmp_path / "model.pt") in message and "different architecture" in message
    assert "hidden_sizes=[32, 16]" in message  # what the checkpoint holds
    assert "hidden.0.weight: checkpoint (32, 784), model (64, 784)" in message
    assert "output.weight: checkpoint (10, 16), model (10, 64)" in message
    assert "hidden.1.weight: in the checkpoint, not in the model" in message
    assert "MLP.from_checkpoint" in message  # the remedy
    assert states_equal(other, before)


def test_missing_layers_are_named(tmp_path):
    save_checkpoint(tmp_path / "model.pt", MLP(hidden_sizes=(16,)))
    with pytest.raises(CheckpointError, match="hidden.1.bias: missing from the checkpoint"):
        load_checkpoint(tmp_path / "model.pt", MLP(hidden_sizes=(16, 16)))


def _unfitting_parts(model):
    """Optimizer, scheduler and generator arguments of a kind that does not fit a
    checkpoint saved with Adam, StepLR and a CPU generator."""
    adam = torch.optim.Adam(model.parameters())
    sgd_two_groups = torch.optim.SGD(
        [{"params": model.hidden.parameters()}, {"params": model.output.parameters()}], lr=0.1
    )
    return {
        "optimizer-kind": (
            {"optimizer": torch.optim.SGD(model.parameters(), lr=0.1)},
            "optimizer state does not fit",
        ),
        "optimizer-groups": ({"optimizer": sgd_two_groups}, "optimizer state does not fit"),
        "scheduler-kind": (
            {"optimizer": adam, "scheduler": torch.optim.lr_scheduler.ExponentialLR(adam, 0.9)},
            "scheduler state does not fit",
        ),
    }


@pytest.mark.parametrize("case", ["optimizer-kind", "optimizer-groups", "scheduler-kind"])
def test_an_unfitting_optimizer_or_scheduler_raises_and_changes_nothing(tmp_path, case):
    saved = MLP(hidden_sizes=(8,))
    adam = torch.optim.Adam(saved.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(adam, step_size=1)
    path = save_checkpoint(tmp_path / "adam.pt", saved, adam, 1, {}, scheduler)
    model = MLP(hidden_sizes=(8,))
    before = _clone(model)
    parts, match = _unfitting_parts(model)[case]
    states = {name: repr(part.state_dict()) for name, part in parts.items()}
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, model, **parts)
    assert "same kind" in str(info.value)  # the remedy
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
    assert {name: repr(part.state_dict()) for name, part in parts.items()} == states


def test_a_generator_state_that_does_not_fit_raises(tmp_path):
    model, _ = _trained()
    path = save_checkpoint(tmp_path / "c.pt", model, generator=torch.Generator())
    _edit(path, lambda c: c.update(generator_state=torch.zeros(3, dtype=torch.uint8)))
    other, _ = _trained(seed=1)
    before = _clone(other)
    generator = torch.Generator().manual_seed(4)
    with pytest.raises(CheckpointError, match="generator state does not fit"):
        load_checkpoint(path, other, generator=generator)
    assert torch.equal(
        torch.randperm(9, generator=generator),
        torch.randperm(9, generator=torch.Generator().manual_seed(4)),
    )
    assert all(torch.equal(before[name], t) for name, t in other.state_dict().items())


def test_a_damaged_random_state_raises_only_when_it_is_restored(tmp_path):
    model, _ = _trained()
    path = save_checkpoint(tmp_path / "c.pt", model)
    _edit(path, lambda c: c.update(torch_rng_state=torch.zeros(3, dtype=torch.uint8)))
    load_checkpoint(path, MLP(hidden_sizes=(32, 16)))  # to evaluate: not needed
    with pytest.raises(CheckpointError, match="random state is damaged"):
        load_checkpoint(path, MLP(hidden_sizes=(32, 16)), restore_rng=True)


@pytest.mark.parametrize("part", ["optimizer", "scheduler", "generator"])
def test_asking_for_a_part_the_checkpoint_lacks_raises(tmp_path, part):
    model = MLP(hidden_sizes=(8,))
    path = save_checkpoint(tmp_path / "weights-only.pt", model)  # as a .best.pt is saved
    optimizer = torch.optim.Adam(model.parameters())
    parts = {
        "optimizer": optimizer,
        "scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1),
        "generator": torch.Generator(),
    }
    with pytest.raises(CheckpointError, match=f"holds no {part} state") as info:
        load_checkpoint(path, MLP(hidden_sizes=(8,)), **{part: parts[part]})
    assert f"without {part}=" in str(info.value)


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch, states_equal):
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
    assert states_equal(model, old_model)


# --- resuming equals an uninterrupted run -------------------------------------------------

NUM_EPOCHS = 4


def _run(num_epochs, checkpoint_path=None, resume=False, seed=0, device="cpu"):
    """A seeded training run with dropout, shuffling and a OneCycleLR schedule planned
    for NUM_EPOCHS epochs; fresh objects every time, as in a new session."""
    data = torch.Generator().manual_seed(42)  # the same data in every run
    X, X_val = torch.rand(192, 784, generator=data), torch.rand(64, 784, generator=data)
    y, y_val = torch.arange(192) % 10, torch.arange(64) % 10
    torch.manual_seed(seed)  # a new session seeds differently: resuming must not care
    model = MLP(hidden_sizes=(64, 32), dropout=0.2).to(device)
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
        device=device,
        checkpoint_path=checkpoint_path,
        resume=resume,
        log=lines.append,
    )
    return history, model, lines


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_resume_equals_an_uninterrupted_run(tmp_path, states_equal, device):
    full, full_model, _ = _run(NUM_EPOCHS, device=device)

    path = tmp_path / "checkpoints" / "run.pt"
    first, _, _ = _run(2, checkpoint_path=path, device=device)
    assert read_checkpoint(path)["epoch"] == 2
    if device == "cuda":
        assert "cuda_rng_state" in read_checkpoint(path)  # dropout draws from the GPU's
    # A new session: different global seed, fresh model, optimizer, scheduler and loader.
    resumed, resumed_model, lines = _run(NUM_EPOCHS, path, resume=True, seed=1, device=device)

    assert lines[0] == "resumed from run.pt after epoch 2"
    assert len(lines) == 1 + 2 + 1  # resumed, epochs 3 and 4, restored
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert first[key] == full[key][:2]
        assert resumed[key] == full[key]  # exactly, not approximately
    assert len(set(full["train_loss"])) == NUM_EPOCHS  # training really moved
    assert states_equal(resumed_model, full_model)


def test_resume_needs_the_random_state(tmp_path, monkeypatch):
    """Without restoring the random state, dropout draws other masks after resuming:
    the test above would catch a fit that forgot to ask for it."""
    full, _, _ = _run(NUM_EPOCHS)
    path = tmp_path / "run.pt"
    _run(2, checkpoint_path=path)
    real_load = checkpoints_module.load_checkpoint

    def load_without_rng(*args, **kwargs):
        return real_load(*args, **{**kwargs, "restore_rng": False})

    monkeypatch.setattr("mnist_helpers.training.load_checkpoint", load_without_rng)
    resumed, _, _ = _run(NUM_EPOCHS, path, resume=True, seed=1)
    assert resumed["train_loss"][:2] == full["train_loss"][:2]
    assert resumed["train_loss"][2:] != full["train_loss"][2:]


def test_resume_of_a_finished_run_trains_no_more(tmp_path, states_equal):
    path = tmp_path / "run.pt"
    full, full_model, _ = _run(NUM_EPOCHS, checkpoint_path=path)
    again, again_model, lines = _run(NUM_EPOCHS, path, resume=True, seed=1)
    assert lines[0] == f"resumed from run.pt after epoch {NUM_EPOCHS}"
    assert not any(line.startswith("epoch") for line in lines)
    assert again["val_loss"] == full["val_loss"]
    assert states_equal(again_model, full_model)  # the best one


def test_without_resume_an_existing_checkpoint_is_ignored(tmp_path):
    path = tmp_path / "run.pt"
    _run(2, checkpoint_path=path, seed=3)
    history, _, lines = _run(2, checkpoint_path=path)
    fresh, _, _ = _run(2)
    assert not lines[0].startswith("resumed")
    assert history["val_loss"] == fresh["val_loss"]


@pytest.mark.parametrize("damage", ["missing", "another-run", "truncated"])
def test_resume_with_a_best_file_of_another_run_raises_before_changing_the_model(tmp_path, damage):
    path = tmp_path / "run.pt"
    _run(2, checkpoint_path=path)
    if damage == "missing":
        best_path(path).unlink()
    elif damage == "another-run":
        _edit(best_path(path), lambda c: c.update(epoch=7))
    else:
        _truncated(best_path(path))
    torch.manual_seed(0)
    model = MLP(hidden_sizes=(64, 32))
    before = _clone(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = TensorLoader(torch.rand(8, 784), torch.arange(8))
    with pytest.raises(CheckpointError, match="run.best.pt"):
        fit(model, loader, loader, optimizer, 3, checkpoint_path=path, resume=True, log=None)
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())


def test_a_long_path_with_hyphens_stays_whole_in_the_message(tmp_path):
    folder = tmp_path / "run-2026-11-28-a-very-long-folder-name-with-hyphens-in-it"
    folder.mkdir()
    path = folder / "model.pt"
    save_checkpoint(path, MLP(hidden_sizes=(16,)), epoch=1)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, MLP())
    assert str(path) in str(info.value)
