"""Chapter 4's final training recipe, for the chapters after it.

Chapter 4 builds this recipe step by step and trains it; later chapters load the
result with :func:`load_final_model`, which trains it again with
:func:`train_final_model` when it runs on its own. The settings are written down
once, in :data:`FINAL_RECIPE`. Retrain the final model from a shell with::

    python -m mnist_helpers.recipe [--device cpu] [--checkpoint notebooks/checkpoints/mlp.pt]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints import CheckpointError, best_path, load_checkpoint, read_checkpoint
from .data import ShiftedLoader, TensorLoader, load_tensors, normalize, train_val_split
from .model import MLP
from .runtime import get_device, seed_everything
from .training import evaluate, fit

__all__ = [
    "FINAL_EPOCHS",
    "FINAL_RECIPE",
    "Recipe",
    "ShiftedLoader",
    "load_final_model",
    "train_final_model",
]


@dataclass(frozen=True)
class Recipe:
    """The settings of a training recipe: AdamW with a one-cycle schedule over
    normalised in-memory tensors, with random shifts of up to ``max_shift`` pixels."""

    epochs: int
    batch_size: int
    max_lr: float
    weight_decay: float
    seed: int
    max_shift: int


#: The final recipe of chapter 4, the one place its settings are written down.
FINAL_RECIPE = Recipe(
    epochs=12, batch_size=256, max_lr=3e-3, weight_decay=1e-4, seed=0, max_shift=1
)

#: Epochs of the final training run (``FINAL_RECIPE.epochs``).
FINAL_EPOCHS = FINAL_RECIPE.epochs


def train_final_model(
    device: torch.device | str = "cpu",
    checkpoint_path: str | Path = "checkpoints/mlp.pt",
    log=None,
    recipe: Recipe | None = None,
) -> MLP:
    """Train chapter 4's recipe (:data:`FINAL_RECIPE` unless ``recipe`` is given):
    normalised in-memory tensors, the seeded training/validation split, shuffled
    batches with random shifts, AdamW with a one-cycle schedule, seeded throughout.
    Saves ``checkpoint_path`` and ``<name>.best.pt`` and returns the best model by
    validation loss. ``log`` (``print``, say) gets one line per epoch."""
    recipe = recipe or FINAL_RECIPE
    images, labels = load_tensors(train=True)
    X_all = normalize(images)
    train_idx, val_idx = train_val_split(num_samples=len(labels), num_val=len(labels) // 6)
    generator = seed_everything(recipe.seed)
    train_loader = ShiftedLoader(
        TensorLoader(
            X_all[train_idx],
            labels[train_idx],
            batch_size=recipe.batch_size,
            shuffle=True,
            generator=generator,
        ),
        max_shift=recipe.max_shift,
    )
    val_loader = TensorLoader(X_all[val_idx], labels[val_idx], batch_size=1000)
    model = MLP().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=recipe.max_lr,
        epochs=recipe.epochs,
        steps_per_epoch=len(train_loader),
    )
    fit(
        model,
        train_loader,
        val_loader,
        optimizer,
        recipe.epochs,
        scheduler=scheduler,
        device=device,
        checkpoint_path=checkpoint_path,
        log=log,
    )
    return model  # fit has loaded the best epoch's weights into it


def _finished_run(last_path: Path, best_file: Path) -> bool:
    """Whether both checkpoints come from a run of the recipe that reached its end
    (a run still in progress, e.g. chapter 4 in another process, does not count).
    A damaged or foreign file raises :class:`CheckpointError`."""
    if not (last_path.is_file() and best_file.is_file()):
        return False
    last, best = read_checkpoint(last_path), read_checkpoint(best_file)
    val_loss = last["history"].get("val_loss") or [float("inf")]
    best_epoch = val_loss.index(min(val_loss)) + 1
    return last["epoch"] == FINAL_RECIPE.epochs and best["epoch"] == best_epoch


def load_final_model(
    device: torch.device | str = "cpu",
    checkpoint_path: str | Path = "checkpoints/mlp.pt",
    log=print,
) -> MLP:
    """The best model of chapter 4's finished run, from ``<name>.best.pt`` next to
    ``checkpoint_path``; when there is none, train it first with
    :func:`train_final_model` (12 epochs: about half a minute on an idle 2-core CPU,
    longer on a busy one; chapter 4 prints the time of each epoch). ``log`` says
    which.

    Raises :class:`~mnist_helpers.CheckpointError` when a file at those paths is
    damaged, foreign or from another architecture (the message says what to do).
    """
    last_path = Path(checkpoint_path)
    best_file = best_path(last_path)
    log = log or (lambda line: None)
    try:
        finished = _finished_run(last_path, best_file)
        if finished:
            with torch.random.fork_rng(devices=[]):  # loading leaves the random state alone
                model = MLP()
            checkpoint = load_checkpoint(best_file, model, map_location="cpu")
    except CheckpointError as error:
        raise CheckpointError(
            f"{error}\nload_final_model needs the final model ({MLP().config}) of a "
            f"finished run: delete {last_path} and {best_file} and call it again to train "
            "it afresh, or run python -m mnist_helpers.recipe."
        ) from error
    if not finished:
        log(f"No finished run of chapter 4 in {last_path.parent}: training it on {device}")
        return train_final_model(device, last_path)
    log(f"Loaded {best_file} (epoch {checkpoint['epoch']} of {FINAL_RECIPE.epochs}) on {device}")
    return model.to(device)


def _default_checkpoint() -> Path:
    """``notebooks/checkpoints/mlp.pt`` from the repository root (where the chapters
    look for it), else ``checkpoints/mlp.pt``."""
    notebooks = Path("notebooks")
    return (notebooks if notebooks.is_dir() else Path(".")) / "checkpoints" / "mlp.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_helpers.recipe",
        description="Train the book's final model (chapter 4's recipe) and save it "
        "where the chapters load it from.",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or mps (default: the best available)"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="where to save the last epoch; the best goes next to it as <name>.best.pt "
        "(default: notebooks/checkpoints/mlp.pt in the repository, else "
        "checkpoints/mlp.pt)",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else get_device()
    checkpoint = args.checkpoint or _default_checkpoint()
    recipe = FINAL_RECIPE
    print(
        f"Training the final recipe on {device}: {recipe.epochs} epochs, batches of "
        f"{recipe.batch_size} shifted by up to {recipe.max_shift} pixel(s), AdamW "
        f"(weight decay {recipe.weight_decay:g}) with a one-cycle schedule peaking at "
        f"{recipe.max_lr:g}, seed {recipe.seed}",
        flush=True,
    )
    model = train_final_model(device, checkpoint, log=lambda line: print(line, flush=True))
    images, labels = load_tensors(train=False)
    test_loader = TensorLoader(normalize(images), labels, batch_size=1000)
    result = evaluate(model, test_loader, device=device)
    print(f"Saved {checkpoint} and {best_path(checkpoint)}")
    print(f"Test accuracy of the best model: {result.accuracy:.2%} (loss {result.loss:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
