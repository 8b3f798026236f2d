"""Saving and loading training checkpoints safely (introduced in chapter 3).

A checkpoint is a plain dictionary of tensors and numbers, so it loads with
``torch.load(..., weights_only=True)``, which refuses to run code hidden in a file.
Saving is atomic: the file is written under a temporary name and renamed over
the old one only once complete, so an interrupted save never destroys a good
checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable or does not fit the model it is loaded into."""


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
    states when given, for exact resuming) to ``path``, atomically."""
    path = Path(path)
    checkpoint = {
        "model": model.state_dict(),
        "epoch": epoch,
        "history": dict(history or {}),
        "torch_rng_state": torch.get_rng_state(),
    }
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        checkpoint["scheduler"] = scheduler.state_dict()
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


def _check_shapes(model: nn.Module, state: dict, path: Path) -> None:
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
        raise CheckpointError(
            f"{path} was saved from a different architecture than "
            f"{type(model).__name__}:\n" + "\n".join(sorted(problems)) + "\n"
            "Build the model with the same hidden sizes as when the checkpoint was "
            "saved, or train and save a new checkpoint."
        )


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    generator: torch.Generator | None = None,
    map_location: str | torch.device | None = "cpu",
) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and the
    optimizer, scheduler and generator when given) and restore PyTorch's random
    state. Returns the checkpoint dictionary (``epoch``, ``history``, ...).

    Raises :class:`CheckpointError` when the file is missing, unreadable or from
    another architecture; the model is left untouched in that case.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. Train and save one first.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: {error}). "
            "It may be truncated or not a checkpoint at all; train and save it again."
        ) from error
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a checkpoint written by save_checkpoint.")
    _check_shapes(model, checkpoint["model"], path)
    if optimizer is not None and "optimizer" in checkpoint:
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError) as error:
            raise CheckpointError(
                f"{path}: the optimizer state does not fit this optimizer ({error}). "
                "Create the same kind of optimizer over the same model as when saving."
            ) from error
    model.load_state_dict(checkpoint["model"])
    if scheduler is not None and "scheduler" in checkpoint:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if generator is not None and "generator_state" in checkpoint:
        generator.set_state(checkpoint["generator_state"])
    if "torch_rng_state" in checkpoint:
        torch.set_rng_state(checkpoint["torch_rng_state"])
    return checkpoint
