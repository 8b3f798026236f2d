"""Helpers for the book *Training an MLP on MNIST with PyTorch*.

Each helper does a chore the book has already taught in full, so later chapters
can focus on their own topic. Modules by concern:

* :mod:`mnist_helpers.data`: locate, verify and load MNIST (chapter 1); batch it
  from memory, with random shifts (chapter 4)
* :mod:`mnist_helpers.model`: the MLP (chapter 2)
* :mod:`mnist_helpers.training`: the training loop and evaluation (chapter 3)
* :mod:`mnist_helpers.checkpoints`: atomic, resumable checkpoints (chapter 3)
* :mod:`mnist_helpers.recipe`: chapter 4's final training recipe, also a command:
  ``python -m mnist_helpers.recipe``
* :mod:`mnist_helpers.runtime`: device choice, seeding and timing (chapters 1, 3 and 9)
* :mod:`mnist_helpers.plots`: figures (chapters 1, 3 and 5)
* :mod:`mnist_helpers.digits`: prepare your own digit images and read them (chapter 10);
  :mod:`mnist_helpers.canvas`, a drawing canvas for Jupyter and Colab (chapter 10)
* :mod:`mnist_helpers.augment` (augmentation on whole batches) and
  :mod:`mnist_helpers.speedrun` (the speed recipe), imported from there (chapter 11)
* :mod:`mnist_helpers.ddp`: data-parallel training with ``torch.distributed``, a
  script for ``torchrun --standalone --nproc-per-node=2 -m mnist_helpers.ddp``
  (chapter 12)
* :mod:`mnist_helpers.bench`: the benchmark, ``python -m mnist_helpers.bench``
"""

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import (
    BACKGROUND,
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
    MNISTDataError,
    ShiftedLoader,
    TensorLoader,
    data_dir,
    ensure_mnist,
    load_mnist,
    load_tensors,
    normalize,
    raw_dir,
    shift_images,
    train_val_split,
)
from .model import MLP
from .runtime import get_device, seed_everything, seed_worker, synchronize
from .training import Evaluation, evaluate, fit, train_epoch

# The recipe's names load on first use (PEP 562), so that the package does not import
# mnist_helpers.recipe itself: `python -m mnist_helpers.recipe` then runs it cleanly,
# without runpy's warning about a module imported before it runs. The figures load on
# first use too: a process that only trains (chapter 12 starts several) does not pay
# for importing matplotlib.
_RECIPE_NAMES = ("FINAL_EPOCHS", "FINAL_RECIPE", "Recipe", "load_final_model", "train_final_model")
_PLOT_NAMES = (
    "plot_confusion_matrix",
    "plot_history",
    "show_image_pixels",
    "show_images",
    "show_predictions",
)


def __getattr__(name: str):
    if name in _RECIPE_NAMES:
        from . import recipe

        return getattr(recipe, name)
    if name in _PLOT_NAMES:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKGROUND",
    "CheckpointError",
    "Evaluation",
    "FINAL_EPOCHS",
    "FINAL_RECIPE",
    "MLP",
    "MNISTDataError",
    "MNIST_FILES",
    "MNIST_MEAN",
    "MNIST_STD",
    "Recipe",
    "ShiftedLoader",
    "TensorLoader",
    "data_dir",
    "ensure_mnist",
    "evaluate",
    "fit",
    "get_device",
    "load_checkpoint",
    "load_final_model",
    "load_mnist",
    "load_tensors",
    "normalize",
    "plot_confusion_matrix",
    "plot_history",
    "raw_dir",
    "save_checkpoint",
    "seed_everything",
    "seed_worker",
    "shift_images",
    "show_image_pixels",
    "show_images",
    "show_predictions",
    "synchronize",
    "train_epoch",
    "train_final_model",
    "train_val_split",
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
