"""Reading a reader's own digit image (chapter 10).

MNIST digits are white on black, cropped to the digit, scaled so that the longer
side is 20 pixels (with anti-aliasing, keeping the aspect ratio) and placed in a
28x28 field by their centre of mass. :func:`prepare_digit` does the same to any
image (a file, a PIL image or an array), :func:`predict_digit` asks a model, and
:func:`plot_digit_prediction` shows the answer. :class:`DigitFolder` is a data set
of digit image files, one per sample, with the label in the file name. The static
page "Draw a digit" runs the same steps in JavaScript
(``mnist_helpers/static/draw/draw.js``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms

from .data import MNIST_MEAN, MNIST_STD

__all__ = [
    "TO_INPUT",
    "DigitFolder",
    "DigitImageError",
    "DigitPrediction",
    "plot_digit_prediction",
    "predict_digit",
    "prepare_digit",
]

#: Images whose longer side exceeds this are first reduced by averaging blocks of
#: pixels (fast, and the result is scaled to 20 pixels anyway).
MAX_SIDE = 1024
#: Pixels with at least this much ink (0 to 1, after the background is removed)
#: belong to the digit when it is cropped.
INK_THRESHOLD = 0.1
#: An image whose ink is fainter than this everywhere is blank.
MIN_CONTRAST = 0.05
#: The longer side of the scaled digit, the size of the field, and where the
#: centre of mass goes (row and column index; MNIST's digits average 14.0).
DIGIT_SIZE, FIELD_SIZE, CENTRE = 20, 28, 14.0


#: An MNIST-style image file (28x28, white digit on black) as the network's input:
#: one channel (a colour file is made gray), 0..1 values with the channel first,
#: normalised as in training. The same values as :func:`~mnist_helpers.normalize`.
TO_INPUT = transforms.Compose(
    [
        transforms.Grayscale(),
        transforms.ToTensor(),
        transforms.Normalize((MNIST_MEAN,), (MNIST_STD,)),
    ]
)


class DigitFolder(Dataset):
    """The PNG files of ``folder``, each named ``<anything>_<label>.png``:
    ``dataset[i]`` is the image of the i-th file (in sorted order) through
    ``transform`` (:data:`TO_INPUT` by default) and its label. Defined in a
    module, so that DataLoader workers started by "spawn" can import it."""

    def __init__(self, folder: str | Path, transform=TO_INPUT):
        self.paths = sorted(Path(folder).glob("*_*.png"))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = self.paths[index]
        with Image.open(path) as image:
            X = self.transform(image)
        label = int(path.stem.split("_")[-1])  # "00042_4" -> 4
        return X, label


class DigitImageError(ValueError):
    """An image :func:`prepare_digit` cannot read a digit from; the message says
    what is wrong and how to fix it."""


class DigitPrediction(NamedTuple):
    """What :func:`predict_digit` returns."""

    digit: int  #: the most probable digit
    probabilities: torch.Tensor  #: ``(10,)``, the softmax of the logits
    image: torch.Tensor  #: the prepared, normalised input ``(1, 1, 28, 28)``


def prepare_digit(image) -> torch.Tensor:
    """Turn a digit image into the network's input, as MNIST was made.

    ``image`` is a file path, a PIL image, or a NumPy array or tensor of
    shape ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with 1 to 4 channels
    (``uint8`` 0..255, ``uint16`` 0..65535 or floats 0..1). Returns a
    normalised ``float32`` tensor of shape ``(1, 1, 28, 28)``: white digit
    on black, cropped, scaled so its longer side is 20 pixels, centred by
    its centre of mass.
    """
    gray, alpha = _to_gray_alpha(image)
    gray = _composite(gray, alpha)
    ink = _remove_background(gray)
    digit = _scale(_crop(ink))
    field = _centre(digit)
    normalized = (field - MNIST_MEAN) / MNIST_STD
    X = torch.from_numpy(normalized).float()
    return X.reshape(1, 1, FIELD_SIZE, FIELD_SIZE)


def predict_digit(model: torch.nn.Module, image) -> DigitPrediction:
    """Prepare ``image`` with :func:`prepare_digit` and ask ``model``, in
    evaluation mode and without gradients, on the model's device (the model's
    own mode is restored afterwards)."""
    X = prepare_digit(image)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probabilities = torch.softmax(model(X.to(device)), dim=1)[0].cpu()
    finally:
        model.train(was_training)
    return DigitPrediction(int(probabilities.argmax()), probabilities, X)


def plot_digit_prediction(prediction: DigitPrediction, title: str | None = None):
    """The prepared image beside a bar chart of the ten probabilities."""
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(7, 2.8), gridspec_kw={"width_ratios": [1, 1.6]}
    )
    image = prediction.image[0, 0] * MNIST_STD + MNIST_MEAN
    left.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
    left.set_title("What the network sees (28x28)")
    left.set_xlabel("column")
    left.set_ylabel("row")
    colors = ["tab:gray"] * 10
    colors[prediction.digit] = "tab:blue"
    right.bar(range(10), prediction.probabilities.numpy(), color=colors)
    right.set_xticks(range(10))
    right.set_ylim(0, 1)
    right.set_xlabel("digit")
    right.set_ylabel("probability")
    best = float(prediction.probabilities[prediction.digit])
    right.set_title(f"Prediction: {prediction.digit} ({best:.0%})")
    fig.suptitle(title or "A digit and the network's answer")
    fig.tight_layout()
    return fig


# --- the steps ----------------------------------------------------------------


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise DigitImageError(
            f"No file at {path}: check the path (it is relative to the folder the "
            f"code runs in, {Path.cwd()})."
        )
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.copy() if opened.mode != "P" else opened.convert("RGBA")
    except (UnidentifiedImageError, OSError) as error:
        raise DigitImageError(
            f"{path} is not an image that can be read ({error}). Save the digit as "
            "a PNG or JPEG file and pass that file."
        ) from error


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image as an array of 0..1 floats ``(H, W, C)``, reduced when huge."""
    if image.width == 0 or image.height == 0:
        raise DigitImageError(_empty_message(image.size[::-1]))
    if image.mode in ("P", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    if image.mode == "RGBA" and max(image.size) > MAX_SIDE:
        image = image.convert("RGBa")  # premultiplied: blocks average correctly
    factor = math.ceil(max(image.size) / MAX_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    if image.mode == "RGBa":
        image = image.convert("RGBA")
    array = np.asarray(image)
    if image.mode == "I":
        scale = 65535.0 if array.max() > 255 else 255.0
        return (array / scale)[..., None]
    if image.mode == "F":
        return _float_array(array)[..., None]
    array = array / 255.0
    return array[..., None] if array.ndim == 2 else array


def _empty_message(shape) -> str:
    return (
        f"The image is empty (shape {tuple(shape)}): it has no pixels. Pass an "
        "image with a digit in it."
    )


def _float_array(array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        raise DigitImageError(
            "The image holds NaN or infinite values: replace them "
            "(e.g. np.nan_to_num(image)) before preparing it."
        )
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        hint = (
            "it looks normalised already: pass the image before normalisation"
            if low < 0
            else "divide by 255 if it holds 0..255 values"
        )
        raise DigitImageError(
            f"A float image must hold values from 0 to 1; this one goes from "
            f"{low:.3g} to {high:.3g}: {hint}."
        )
    return array.astype(np.float64)


def _array_to_float(array: np.ndarray) -> np.ndarray:
    """An array of any supported dtype as 0..1 floats ``(H, W, C)``."""
    if array.ndim == 2:
        array = array[..., None]
    elif array.ndim > 3 and all(size == 1 for size in array.shape[:-3]):
        array = array.reshape(array.shape[-3:])  # e.g. (1, 1, 28, 28)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] > 4:
        array = np.moveaxis(array, 0, -1)  # channels first, as in PyTorch
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise DigitImageError(
            f"An image array has shape (H, W), (H, W, C) or (C, H, W) with 1 to 4 "
            f"channels; this one has shape {array.shape}. A flat MNIST image of 784 "
            "values becomes one with image.reshape(28, 28)."
        )
    if array.size == 0:
        raise DigitImageError(_empty_message(array.shape))
    if max(array.shape[:2]) > MAX_SIDE:
        if array.dtype == np.uint8 and array.shape[-1] != 2:  # PIL reduces fast
            return _pil_to_array(
                Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
            )
        array = _reduce(array, math.ceil(max(array.shape[:2]) / MAX_SIDE))
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array / 255.0
    if array.dtype == np.uint16:
        return array / 65535.0
    if kind == "b":
        return array.astype(np.float64)
    if kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise DigitImageError(
                f"An integer image must hold values from 0 to 255 ({array.dtype} "
                f"from {array.min()} to {array.max()}): convert it with "
                "image.astype(np.uint8), or to np.uint16 for a 16-bit image."
            )
        return array / 255.0
    if kind == "f":
        return _float_array(array)
    raise DigitImageError(
        f"Cannot read an image from an array of dtype {array.dtype}: use uint8 "
        "(0..255), uint16 or floats (0..1)."
    )


def _reduce(array: np.ndarray, factor: int) -> np.ndarray:
    """The mean of each ``factor`` x ``factor`` block (the image made smaller)."""
    height, width = (size // factor * factor for size in array.shape[:2])
    if height == 0 or width == 0:
        return array
    blocks = array[:height, :width].reshape(
        height // factor, factor, width // factor, factor, array.shape[2]
    )
    mean = blocks.mean(axis=(1, 3), dtype=np.float64)
    return mean.astype(array.dtype) if array.dtype.kind in "iub" else mean


def _to_gray_alpha(image) -> tuple[np.ndarray, np.ndarray | None]:
    """Gray values ``(H, W)`` and the opacity (or None), both 0..1 floats."""
    if isinstance(image, (str, Path)):
        image = _open(Path(image))
    if isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, (np.ndarray, torch.Tensor)):
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().numpy()
        array = _array_to_float(image)
    else:
        raise DigitImageError(
            f"Cannot read a digit from a {type(image).__name__}: pass a file path, "
            "a PIL image, or a NumPy array or tensor."
        )
    channels = array.shape[-1]
    alpha = array[..., -1] if channels in (2, 4) else None
    color = array[..., :3] if channels >= 3 else array[..., :1]
    # Luminance of ITU-R 601-2, as PIL's convert("L") computes it.
    gray = color @ np.array([0.299, 0.587, 0.114]) if channels >= 3 else color[..., 0]
    return gray, alpha


def _composite(gray: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Put a transparent image on a background that contrasts with its strokes:
    white under dark strokes, black under light ones."""
    if alpha is None or alpha.min() == 1:
        return gray
    if alpha.max() == 0:
        raise DigitImageError(
            "The image is fully transparent: nothing is drawn on it. Draw the digit "
            "with an opaque colour."
        )
    stroke = float((gray * alpha).sum() / alpha.sum())
    background = 1.0 if stroke < 0.5 else 0.0
    return gray * alpha + background * (1 - alpha)


def _remove_background(gray: np.ndarray) -> np.ndarray:
    """Ink from 0 (background) to 1 (strokes): inverted when the background
    (the median of the border pixels) is light, and stretched to full contrast."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 0.5:
        gray, background = 1 - gray, 1 - background
    contrast = float(gray.max()) - background
    if contrast < MIN_CONTRAST:
        raise DigitImageError(
            "The image is blank: no part of it stands out from the background "
            f"(a contrast of {max(contrast, 0):.3f} on a 0..1 scale), so there is no "
            "digit to read. Draw the digit darker (or lighter) than the background."
        )
    return np.clip((gray - background) / contrast, 0, 1)


def _crop(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _area_weights(size: int, new_size: int) -> np.ndarray:
    """``(new_size, size)``: how much of each old pixel each new pixel covers,
    as a fraction of the new pixel (area averaging, which anti-aliases)."""
    edges = np.arange(new_size + 1) * size / new_size
    starts, ends = edges[:-1, None], edges[1:, None]
    old = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(ends, old + 1) - np.maximum(starts, old), 0, None)
    return overlap / (size / new_size)


def _scale(digit: np.ndarray) -> np.ndarray:
    """Scale so that the longer side is 20 pixels, keeping the aspect ratio."""
    height, width = digit.shape
    scale = DIGIT_SIZE / max(height, width)
    new_height = max(1, min(DIGIT_SIZE, math.floor(height * scale + 0.5)))
    new_width = max(1, min(DIGIT_SIZE, math.floor(width * scale + 0.5)))
    scaled = _area_weights(height, new_height) @ digit @ _area_weights(width, new_width).T
    return np.clip(scaled, 0, 1)


def _centre(digit: np.ndarray) -> np.ndarray:
    """Paste into a 28x28 field so that the centre of mass lands on pixel 14."""
    height, width = digit.shape
    mass = digit.sum()
    row = (digit.sum(axis=1) * np.arange(height)).sum() / mass
    col = (digit.sum(axis=0) * np.arange(width)).sum() / mass
    top = min(max(math.floor(CENTRE - row + 0.5), 0), FIELD_SIZE - height)
    left = min(max(math.floor(CENTRE - col + 0.5), 0), FIELD_SIZE - width)
    field = np.zeros((FIELD_SIZE, FIELD_SIZE))
    field[top : top + height, left : left + width] = digit
    return field
