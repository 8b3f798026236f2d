"""The training loop of chapter 3, packaged for the chapters after it.

:func:`train_epoch` is the five-step loop chapter 3 writes inline, :func:`evaluate`
the evaluation of chapters 3 and 5, and :func:`fit` (chapter 4) runs epochs of both,
keeps the best model by validation loss and saves resumable checkpoints.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoints import (
    CheckpointError,
    best_path,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

__all__ = ["Evaluation", "evaluate", "fit", "train_epoch"]


def train_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable | None = None,
    device: torch.device | str = "cpu",
    scheduler=None,
) -> tuple[float, float]:
    """One pass over ``loader`` in training mode. ``scheduler``, when given, is
    stepped after every batch (as :class:`~torch.optim.lr_scheduler.OneCycleLR`
    expects). Returns the mean loss per sample and the accuracy."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.train()
    total_loss, correct, count = 0.0, 0, 0
    for X, y in loader:
        X, y = X.to(device), y.to(device)
        optimizer.zero_grad()  # 1. clear the gradients of the last batch
        logits = model(X)  # 2. forward pass
        loss = loss_fn(logits, y)  # 3. loss: mean over the batch
        loss.backward()  # 4. backward pass: compute the gradients
        optimizer.step()  # 5. update the parameters
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
        count += len(y)
    return total_loss / count, correct / count


@dataclass
class Evaluation:
    """What :func:`evaluate` measured on a data set."""

    loss: float
    accuracy: float
    per_class_accuracy: torch.Tensor  # (num_classes,)
    predictions: torch.Tensor  # (N,) predicted labels
    targets: torch.Tensor  # (N,) true labels
    probabilities: torch.Tensor  # (N, num_classes) softmax outputs

    def __repr__(self) -> str:
        return f"Evaluation(loss={self.loss:.4f}, accuracy={self.accuracy:.2%})"


def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable | None = None,
    device: torch.device | str = "cpu",
) -> Evaluation:
    """Evaluate ``model`` on ``loader`` in eval mode without tracking gradients."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model.eval()
    total_loss, probabilities, targets = 0.0, [], []
    with torch.no_grad():
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            logits = model(X)
            total_loss += loss_fn(logits, y).item() * len(y)
            probabilities.append(logits.softmax(dim=1).cpu())
            targets.append(y.cpu())
    probabilities, targets = torch.cat(probabilities), torch.cat(targets)
    predictions = probabilities.argmax(dim=1)
    num_classes = probabilities.shape[1]
    correct = predictions == targets
    per_class = torch.bincount(targets[correct], minlength=num_classes) / torch.bincount(
        targets, minlength=num_classes
    ).clamp(min=1)
    return Evaluation(
        loss=total_loss / len(targets),
        accuracy=correct.float().mean().item(),
        per_class_accuracy=per_class,
        predictions=predictions,
        targets=targets,
        probabilities=probabilities,
    )


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    num_epochs: int,
    *,
    loss_fn: Callable | None = None,
    scheduler=None,
    device: torch.device | str = "cpu",
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    restore_best: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, list]:
    """Train for ``num_epochs`` epochs in all, validating after each one.

    Returns the history: per epoch ``train_loss``, ``train_acc``, ``val_loss``,
    ``val_acc`` and ``seconds``. With ``checkpoint_path`` a checkpoint (model,
    optimizer, scheduler, the loader's generator, epoch, history, and the random state
    of the CPU and of the GPU in use) is saved after every epoch and, when ``resume``
    is true and it exists, training continues from it, random state included: the
    result is the same as an uninterrupted run. The best model by validation loss is
    saved next to it as ``<name>.best.pt`` and, with ``restore_best``, loaded back
    into ``model`` at the end. ``log`` prints one plain-text line per epoch.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    log = log or (lambda line: None)
    model.to(device)
    generator = getattr(train_loader, "generator", None)
    history = {key: [] for key in ("train_loss", "train_acc", "val_loss", "val_acc", "seconds")}
    best_state = copy.deepcopy(model.state_dict())
    best_file = None
    if checkpoint_path is not None:
        checkpoint_path = Path(checkpoint_path)
        best_file = best_path(checkpoint_path)
        if resume and checkpoint_path.is_file():
            # The best weights first: a stale or damaged best file stops here, before
            # the model is changed.
            saved = read_checkpoint(checkpoint_path, map_location=device)["history"]
            if saved.get("val_loss"):
                best_state = _best_state_of_run(model, saved, best_file, device)
            checkpoint = load_checkpoint(
                checkpoint_path,
                model,
                optimizer,
                scheduler,
                generator,
                map_location=device,
                restore_rng=True,
            )
            history = checkpoint["history"]
            log(f"resumed from {checkpoint_path.name} after epoch {checkpoint['epoch']}")
    best_loss = min(history["val_loss"], default=float("inf"))

    for epoch in range(len(history["val_loss"]) + 1, num_epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc = train_epoch(
            model, train_loader, optimizer, loss_fn, device, scheduler
        )
        result = evaluate(model, val_loader, loss_fn, device)
        seconds = time.perf_counter() - start
        for key, value in zip(
            history, (train_loss, train_acc, result.loss, result.accuracy, seconds)
        ):
            history[key].append(value)
        improved = result.loss < best_loss
        if improved:
            best_loss = result.loss
            best_state = copy.deepcopy(model.state_dict())
            if best_file is not None:
                save_checkpoint(best_file, model, epoch=epoch, history=history)
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, model, optimizer, epoch, history, scheduler, generator)
        log(
            f"epoch {epoch:>2}/{num_epochs}  "
            f"train loss {train_loss:.4f} acc {train_acc:6.2%}  "
            f"val loss {result.loss:.4f} acc {result.accuracy:6.2%}  "
            f"{seconds:5.1f} s{'  *' if improved else ''}"
        )
    if restore_best and history["val_loss"]:
        model.load_state_dict(best_state)
        best_epoch = history["val_loss"].index(min(history["val_loss"])) + 1
        log(f"restored the best model: epoch {best_epoch}, val loss {best_loss:.4f}")
    return history


def _best_state_of_run(model: nn.Module, history: dict, best_file: Path, device) -> dict:
    """The weights of the best epoch so far of a resumed run, from its best file."""
    best_epoch = history["val_loss"].index(min(history["val_loss"])) + 1
    probe = copy.deepcopy(model)
    checkpoint = load_checkpoint(best_file, probe, map_location=device)
    if checkpoint["epoch"] != best_epoch:
        raise CheckpointError(
            f"{best_file} holds epoch {checkpoint['epoch']}, but the best epoch of the "
            f"run being resumed is {best_epoch}: it belongs to another run. Delete both "
            "checkpoints to train afresh, or pass resume=False."
        )
    return probe.state_dict()
