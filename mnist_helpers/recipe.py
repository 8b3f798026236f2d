"""Chapter 3's final training recipe, for the chapters after it.

Chapter 3 builds this recipe step by step and trains it; chapter 4 loads the result,
or trains it again with :func:`train_final_model` when it runs on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints import load_checkpoint
from .data import TensorLoader, load_tensors, normalize, train_val_split
from .model import MLP
from .runtime import seed_everything
from .training import fit

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

#: Epochs of the final training run.
FINAL_EPOCHS = FINAL_RECIPE.epochs


class ShiftedLoader:
    """The batches of ``loader``, each moved by a random ``-max_shift..max_shift``
    pixels down and right (``torch.roll``; MNIST's borders are blank). The shifts are
    drawn from the loader's seeded generator, so runs stay reproducible."""

    def __init__(self, loader, max_shift: int = 1):
        self.loader = loader
        self.max_shift = max_shift
        self.generator = loader.generator

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for X, y in self.loader:
            dy, dx = torch.randint(
                -self.max_shift, self.max_shift + 1, (2,), generator=self.generator
            ).tolist()
            yield X.roll(shifts=(dy, dx), dims=(2, 3)), y


def train_final_model(
    device: torch.device | str = "cpu",
    checkpoint_path: str | Path = "checkpoints/mlp.pt",
    log=None,
) -> MLP:
    """Train chapter 3's recipe: normalised in-memory tensors, batch 256 with random
    one-pixel shifts, AdamW with a one-cycle schedule peaking at 3e-3,
    :data:`FINAL_EPOCHS` epochs, seed 0. Saves ``checkpoint_path`` and
    ``<name>.best.pt`` and returns the best model by validation loss."""
    images, labels = load_tensors(train=True)
    X_all = normalize(images)
    train_idx, val_idx = train_val_split()
    generator = seed_everything(0)
    train_loader = ShiftedLoader(
        TensorLoader(
            X_all[train_idx],
            labels[train_idx],
            batch_size=256,
            shuffle=True,
            generator=generator,
        )
    )
    val_loader = TensorLoader(X_all[val_idx], labels[val_idx], batch_size=1000)
    model = MLP().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, epochs=FINAL_EPOCHS, steps_per_epoch=len(train_loader)
    )
    fit(
        model,
        train_loader,
        val_loader,
        optimizer,
        FINAL_EPOCHS,
        scheduler=scheduler,
        device=device,
        checkpoint_path=checkpoint_path,
        log=log,
    )
    return model  # fit has loaded the best epoch's weights into it


def _finished_run(last_path: Path, best_path: Path) -> bool:
    """Whether both checkpoints come from a run of the recipe that reached its end
    (a run still in progress, e.g. chapter 3 in another process, does not count)."""
    if not (last_path.is_file() and best_path.is_file()):
        return False
    last = torch.load(last_path, weights_only=True)
    best = torch.load(best_path, weights_only=True)
    val_loss = last["history"]["val_loss"]
    return last["epoch"] == FINAL_EPOCHS and best["epoch"] == val_loss.index(min(val_loss)) + 1


def load_final_model(
    device: torch.device | str = "cpu",
    checkpoint_path: str | Path = "checkpoints/mlp.pt",
    log=print,
) -> MLP:
    """The best model of chapter 3's finished run, from ``<name>.best.pt`` next to
    ``checkpoint_path``; when there is none, train it first with
    :func:`train_final_model` (about 20 s on a 2-core CPU). ``log`` says which."""
    last_path = Path(checkpoint_path)
    best_path = last_path.with_suffix(".best.pt")
    log = log or (lambda line: None)
    if not _finished_run(last_path, best_path):
        log(f"No finished run of chapter 3 in {last_path.parent}: training it on {device}")
        return train_final_model(device, last_path)
    model = MLP().to(device)
    checkpoint = load_checkpoint(best_path, model, map_location=device)
    log(f"Loaded {best_path} (epoch {checkpoint['epoch']} of {FINAL_EPOCHS}) on {device}")
    return model
