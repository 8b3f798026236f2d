"""Figures used across the chapters. Each function returns its matplotlib Figure;
call ``plt.show()`` after it in a notebook."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.ticker import MaxNLocator
from torch.nn import functional as F
from torchvision.utils import make_grid

from .data import MNIST_MEAN, MNIST_STD

__all__ = [
    "plot_confusion_matrix",
    "plot_history",
    "show_image_pixels",
    "show_images",
    "show_predictions",
]

_PAD = 2  # pixels between the images of a grid
_BAND = 10  # pixels above each image for its label


def _as_images(images: torch.Tensor, normalized: bool) -> torch.Tensor:
    """``(N, 28, 28)`` or ``(N, 1, 28, 28)``, uint8 or float, to float ``(N, 1, H, W)``
    in [0, 1] on the CPU."""
    if images.dim() not in (3, 4) or (images.dim() == 4 and images.shape[1] != 1):
        raise ValueError(
            f"expected a batch of images (N, 28, 28) or (N, 1, 28, 28), got shape "
            f"{tuple(images.shape)}; use show_image_pixels for a single image"
        )
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        images = images.float() / 255
    elif normalized:
        images = images * MNIST_STD + MNIST_MEAN
    if images.dim() == 3:
        images = images.unsqueeze(1)
    return images.clamp(0, 1)


def _grid(images, titles, colors, nrow, title, normalized, cell_inches=0.9):
    images = _as_images(images, normalized)
    if titles and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} labels")
    band = _BAND if titles else 0
    images = F.pad(images, (0, 0, band, 0), value=1.0)  # white space above each image
    nrow = min(nrow, len(images))
    ncol_rows = math.ceil(len(images) / nrow)
    grid = make_grid(images, nrow=nrow, padding=_PAD, pad_value=1.0)
    height, width = images.shape[-2] + _PAD, images.shape[-1] + _PAD
    fig, ax = plt.subplots(
        figsize=(nrow * cell_inches, ncol_rows * cell_inches * height / width + 0.4)
    )
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1)
    for i, (text, color) in enumerate(zip(titles, colors)):
        row, col = divmod(i, nrow)
        ax.text(
            col * width + (width + _PAD - 1) / 2,  # centred over the image
            row * height + _PAD + (band - 1) / 2,  # in the white band above it
            text,
            ha="center",
            va="center",
            color=color,
            fontsize=9,
        )
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def show_images(
    images: torch.Tensor,
    labels: Sequence | torch.Tensor | None = None,
    nrow: int = 8,
    title: str = "MNIST digits",
    normalized: bool = False,
):
    """A grid of images (``torchvision.utils.make_grid``) with each label above its
    image. Set ``normalized=True`` for images normalised with the MNIST mean/std."""
    labels = [] if labels is None else [str(int(label)) for label in labels]
    return _grid(images, labels, ["black"] * len(labels), nrow, title, normalized)


def show_predictions(
    images: torch.Tensor,
    predictions: Sequence | torch.Tensor,
    targets: Sequence | torch.Tensor,
    nrow: int = 8,
    title: str = "Predicted (true) label",
    normalized: bool = False,
):
    """A grid of images titled "predicted (true)": green when right, red when wrong."""
    titles, colors = [], []
    for pred, true in zip(predictions, targets):
        titles.append(f"{int(pred)} ({int(true)})")
        colors.append("green" if int(pred) == int(true) else "red")
    return _grid(images, titles, colors, nrow, title, normalized)


def show_image_pixels(image: torch.Tensor, title: str = "One image, every pixel value"):
    """One 28x28 image, large, with every pixel's value written on it."""
    pixels = image.detach().cpu().squeeze()
    if pixels.dim() != 2:
        raise ValueError(f"expected one image (28, 28) or (1, 28, 28), got {tuple(image.shape)}")
    pixels = pixels.numpy()
    fig, ax = plt.subplots(figsize=(10, 10))
    ax.imshow(pixels, cmap="gray")
    threshold = (pixels.max() + pixels.min()) / 2
    is_int = np.issubdtype(pixels.dtype, np.integer)
    for (row, col), value in np.ndenumerate(pixels):
        text = str(value) if is_int else f"{value:.2f}".lstrip("0") if value else "0"
        ax.annotate(
            text,
            xy=(col, row),
            ha="center",
            va="center",
            fontsize=6,
            color="white" if value < threshold else "black",
        )
    ax.set_title(title)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    fig.tight_layout()
    return fig


def plot_history(history: dict, title: str = "Training curves"):
    """Loss and accuracy per epoch, training against validation, from :func:`fit`."""
    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(epochs, history["train_loss"], "o-", label="training")
    ax_loss.plot(epochs, history["val_loss"], "o-", label="validation")
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.plot(epochs, [100 * a for a in history["train_acc"]], "o-", label="training")
    ax_acc.plot(epochs, [100 * a for a in history["val_acc"]], "o-", label="validation")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    targets: torch.Tensor,
    predictions: torch.Tensor,
    num_classes: int = 10,
    title: str = "Confusion matrix (test set)",
):
    """A seaborn heatmap of counts: rows are true digits, columns predicted digits."""
    targets, predictions = torch.as_tensor(targets), torch.as_tensor(predictions)
    if targets.dim() != 1 or targets.shape != predictions.shape:
        raise ValueError(
            "targets and predictions must be 1-D and of the same length, got shapes "
            f"{tuple(targets.shape)} and {tuple(predictions.shape)}"
        )
    labels = torch.cat([targets, predictions])
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    matrix = torch.bincount(targets * num_classes + predictions, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    fig, ax = plt.subplots(figsize=(7, 6))
    sns.heatmap(matrix.numpy(), annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set(title=title, xlabel="predicted digit", ylabel="true digit")
    fig.tight_layout()
    return fig
