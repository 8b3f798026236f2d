"""Saving and loading training checkpoints safely (introduced in chapter 3).

This module is the one place that knows what a checkpoint holds and where the best
model of a run is kept. A checkpoint is a plain dictionary of tensors and plain
Python data (numbers, strings, booleans, None, lists, tuples, dictionaries), so it
loads with ``torch.load(..., weights_only=True)``, which refuses to run code hidden
in a file:

* ``model``: the model's weights (its ``state_dict``), and ``model_config``: what
  rebuilds it (for :class:`~mnist_helpers.MLP`, its sizes and dropout);
* ``epoch`` and ``history``: how far training got and what it measured;
* for resuming: ``optimizer``, ``scheduler`` and ``generator_state`` (the
  shuffling generator) when given, and the random state of PyTorch on the CPU and
  on the GPU in use.

Saving is atomic: the file is written under a temporary name and renamed over the
old one only once complete, so an interrupted save never destroys a good
checkpoint. Loading checks everything before it changes anything: a missing,
damaged, foreign or unfitting file raises :class:`~mnist_helpers.CheckpointError`, which says
what is wrong and what to do, and leaves the model untouched.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "best_path",
    "load_checkpoint",
    "model_from_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

#: The layout written by :func:`~mnist_helpers.save_checkpoint`. Files without a version number
#: are version 1: the same layout without ``model_config`` and the GPU's random state.
FORMAT_VERSION = 2

_RETRAIN = "Delete it and train again to write a new one."


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit what it is loaded into.
    The message says what is wrong and what to do."""


def best_path(path: str | Path) -> Path:
    """Where :func:`~mnist_helpers.fit` keeps the best model of the run that saves to
    ``path``: ``checkpoints/mlp.pt`` -> ``checkpoints/mlp.best.pt``."""
    return Path(path).with_suffix(".best.pt")


# --- saving ---------------------------------------------------------------------------


def _device_rng_states(model: nn.Module) -> dict[str, Any]:
    """The random state of the GPU the model is on (CUDA: every device), if any."""
    devices = {p.device.type for p in model.parameters()}
    states = {}
    if torch.cuda.is_available() and ("cuda" in devices or torch.cuda.is_initialized()):
        states["cuda_rng_state"] = torch.cuda.get_rng_state_all()
    if "mps" in devices:
        states["mps_rng_state"] = torch.mps.get_rng_state()
    return states


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int = 0,
    history: dict | None = None,
    scheduler=None,
    generator: torch.Generator | None = None,
) -> Path:
    """Save model, optimizer, epoch and history (plus scheduler and random-number
    states when given, for exact resuming) to ``path``, atomically. A model with a
    ``config`` dictionary (as :class:`~mnist_helpers.MLP` has) is described in the
    file too, so :func:`~mnist_helpers.checkpoints.model_from_checkpoint` can rebuild
    it. Returns ``path``."""
    path = Path(path)
    checkpoint: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "epoch": epoch,
        "history": dict(history or {}),
        "torch_rng_state": torch.get_rng_state(),
        **_device_rng_states(model),
    }
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        checkpoint["model_class"] = type(model).__name__
        checkpoint["model_config"] = dict(config)
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
        checkpoint["optimizer_class"] = type(optimizer).__name__
    if scheduler is not None:
        checkpoint["scheduler"] = scheduler.state_dict()
        checkpoint["scheduler_class"] = type(scheduler).__name__
    if generator is not None:
        checkpoint["generator_state"] = generator.get_state()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- reading and checking -------------------------------------------------------------


def read_checkpoint(path: str | Path, map_location: str | torch.device | None = "cpu") -> dict:
    """The checkpoint dictionary at ``path``, checked to be one that
    :func:`~mnist_helpers.save_checkpoint` wrote; nothing is loaded into anything.

    Raises :class:`~mnist_helpers.CheckpointError` when the file is missing, unreadable (truncated,
    not a checkpoint, or holding code that ``weights_only=True`` refuses), of another
    layout, or written by a newer version of these helpers.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. Train and save one first.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). It may be truncated, "
            f"not a checkpoint at all, or hold more than tensors and plain data. {_RETRAIN}"
        ) from error
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, dict) else "no dictionary"
        raise CheckpointError(
            f"{path} is not a checkpoint written by save_checkpoint (found {found}). "
            "Save checkpoints with mnist_helpers.save_checkpoint, or load this file "
            "with torch.load yourself."
        )
    version = checkpoint.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer version of mnist_helpers (checkpoint format "
            f"{version}; this version reads up to {FORMAT_VERSION}). Upgrade the helpers "
            "(pip install --upgrade mnist-helpers, or pull the book's repository), or "
            f"{_RETRAIN[0].lower()}{_RETRAIN[1:]}"
        )
    problems = []
    state = checkpoint["model"]
    if not (
        isinstance(state, dict)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        problems.append("'model' is not a dictionary of named tensors")
    if not isinstance(checkpoint.get("epoch"), int) or checkpoint["epoch"] < 0:
        problems.append(f"'epoch' is {checkpoint.get('epoch')!r}, not a whole number")
    history = checkpoint.get("history")
    if not (isinstance(history, dict) and all(isinstance(v, list) for v in history.values())):
        problems.append("'history' is not a dictionary of lists")
    if problems:
        raise CheckpointError(
            f"{path} is damaged or not a checkpoint written by save_checkpoint: "
            + "; ".join(problems)
            + f". {_RETRAIN}"
        )
    return checkpoint


def _check_shapes(model: nn.Module, checkpoint: dict, path: Path) -> None:
    state = checkpoint["model"]
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    problems = [
        f"  {name}: checkpoint {found[name]}, model {expected[name]}"
        for name in expected.keys() & found.keys()
        if expected[name] != found[name]
    ]
    problems += [
        f"  {name}: missing from the checkpoint" for name in expected.keys() - found.keys()
    ]
    problems += [
        f"  {name}: in the checkpoint, not in the model" for name in found.keys() - expected.keys()
    ]
    if problems:
        described = ""
        if isinstance(config := checkpoint.get("model_config"), dict):
            described = f" (the checkpoint's model: {_describe(config)})"
        intro = textwrap.fill(
            f"{path} was saved from a different architecture than "
            f"{type(model).__name__}{described}:",
            width=79,
            break_long_words=False,  # a path stays whole, on a line of its own
            break_on_hyphens=False,
        )
        remedy = textwrap.fill(
            "Build the model with the same hidden sizes as when the checkpoint was "
            "saved (MLP.from_checkpoint does it for you), or train and save a new "
            "checkpoint.",
            width=79,
        )
        raise CheckpointError(f"{intro}\n" + "\n".join(sorted(problems)) + f"\n{remedy}")


def _describe(config: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in config.items())


def _missing(path: Path, what: str, argument: str) -> CheckpointError:
    return CheckpointError(
        f"{path} holds no {what}, so it cannot be restored: the checkpoint was saved "
        f"without it. Load it without {argument}= (training then starts that part "
        "afresh), or resume from a checkpoint saved with it (fit saves one every epoch)."
    )


def _check_optimizer(checkpoint: dict, optimizer: torch.optim.Optimizer, path: Path) -> None:
    if "optimizer" not in checkpoint:
        raise _missing(path, "optimizer state", "optimizer")
    saved_class = checkpoint.get("optimizer_class")
    if saved_class is not None and saved_class != type(optimizer).__name__:
        raise CheckpointError(
            f"{path}: the optimizer state does not fit this optimizer (it was saved from "
            f"{saved_class}, not {type(optimizer).__name__}). Create the same kind of "
            "optimizer over the same model as when saving."
        )


def _check_scheduler(checkpoint: dict, scheduler, path: Path) -> None:
    if "scheduler" not in checkpoint:
        raise _missing(path, "scheduler state", "scheduler")
    saved, current = checkpoint["scheduler"], scheduler.state_dict()
    saved_class = checkpoint.get("scheduler_class")
    if saved_class is None:  # a version 1 file: judge by the names of its settings
        fits = isinstance(saved, dict) and saved.keys() == current.keys()
        saved_class = "another kind of scheduler" if not fits else type(scheduler).__name__
    else:
        fits = saved_class == type(scheduler).__name__ and isinstance(saved, dict)
    if not fits:
        raise CheckpointError(
            f"{path}: the scheduler state does not fit this scheduler (it was saved from "
            f"{saved_class}, not {type(scheduler).__name__}). Create the same kind of "
            "scheduler over the same optimizer as when saving."
        )


def _check_generator(checkpoint: dict, generator: torch.Generator, path: Path) -> None:
    if "generator_state" not in checkpoint:
        raise _missing(path, "generator state", "generator")
    try:
        torch.Generator(device=generator.device).set_state(checkpoint["generator_state"].cpu())
    except (RuntimeError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"{path}: the generator state does not fit this generator ({error}). Pass "
            f"a torch.Generator on the same device as when saving ({generator.device} "
            "now)."
        ) from error


def _check_rng(checkpoint: dict, path: Path) -> None:
    state = checkpoint.get("torch_rng_state")
    if state is None:
        raise _missing(path, "random state", "restore_rng")
    if not (isinstance(state, torch.Tensor) and state.shape == torch.get_rng_state().shape):
        raise CheckpointError(
            f"{path}: its random state is damaged (not a state of PyTorch's generator). "
            f"Load it with restore_rng=False, or {_RETRAIN[0].lower()}{_RETRAIN[1:]}"
        )


def _restore_rng(checkpoint: dict) -> None:
    torch.set_rng_state(checkpoint["torch_rng_state"].cpu())
    if "cuda_rng_state" in checkpoint and torch.cuda.is_available():
        states = checkpoint["cuda_rng_state"][: torch.cuda.device_count()]
        for index, state in enumerate(states):
            torch.cuda.set_rng_state(state.cpu(), index)
    if "mps_rng_state" in checkpoint and torch.backends.mps.is_available():
        torch.mps.set_rng_state(checkpoint["mps_rng_state"].cpu())


# --- loading --------------------------------------------------------------------------


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    generator: torch.Generator | None = None,
    map_location: str | torch.device | None = "cpu",
    restore_rng: bool = False,
) -> dict:
    """Load a checkpoint written by :func:`~mnist_helpers.save_checkpoint` into ``model`` and, when
    given, the optimizer, scheduler and generator. Returns the checkpoint dictionary
    (``epoch``, ``history``, ...).

    ``restore_rng=True`` also restores PyTorch's random state (CPU, and the GPU's
    when the checkpoint has it) as it was when saving, which resuming a run needs for
    dropout to draw the same masks as an uninterrupted run; :func:`~mnist_helpers.fit`
    asks for it when it resumes. Without it, loading leaves your random state alone.

    Raises :class:`~mnist_helpers.CheckpointError` when the file is missing,
    unreadable, from another architecture, or lacks or does not fit a part you asked
    to restore; everything (model, optimizer, scheduler, generator, random state) is
    left untouched then.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, map_location)
    _check_shapes(model, checkpoint, path)
    if optimizer is not None:
        _check_optimizer(checkpoint, optimizer, path)
    if scheduler is not None:
        _check_scheduler(checkpoint, scheduler, path)
    if generator is not None:
        _check_generator(checkpoint, generator, path)
    if restore_rng:
        _check_rng(checkpoint, path)
    if optimizer is not None:  # first: it validates before it changes anything
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"{path}: the optimizer state does not fit this optimizer ({error}). "
                "Create the same kind of optimizer over the same model as when saving."
            ) from error
    model.load_state_dict(checkpoint["model"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if generator is not None:
        generator.set_state(checkpoint["generator_state"].cpu())  # map_location moved it
    if restore_rng:
        _restore_rng(checkpoint)
    return checkpoint


def model_from_checkpoint(
    model_class: type[nn.Module], path: str | Path, map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Build a ``model_class`` as described in the checkpoint at ``path``, load its
    weights and return it on ``map_location`` in evaluation mode (ready to
    evaluate). :meth:`MLP.from_checkpoint <mnist_helpers.MLP.from_checkpoint>` calls
    this. The random state is left alone."""
    path = Path(path)
    checkpoint = read_checkpoint(path, map_location)
    config = checkpoint.get("model_config")
    saved_class = checkpoint.get("model_class", model_class.__name__)
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path} does not describe its model (it was saved by an older version of "
            "mnist_helpers, or from a model without a config). Build the model "
            "yourself with the sizes it was trained with and call "
            "load_checkpoint(path, model), or save it again with save_checkpoint."
        )
    if saved_class != model_class.__name__:
        raise CheckpointError(
            f"{path} holds a {saved_class}, not a {model_class.__name__}. Rebuild it "
            f"with {saved_class}.from_checkpoint."
        )
    try:
        with torch.random.fork_rng(devices=[]):  # initial weights drawn, then replaced
            model = model_class(**config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path}: its model description ({_describe(config)}) does not build a "
            f"{model_class.__name__} ({error}). {_RETRAIN}"
        ) from error
    _check_shapes(model, checkpoint, path)
    model.load_state_dict(checkpoint["model"])
    if map_location is not None:
        model.to(map_location)
    return model.eval()
