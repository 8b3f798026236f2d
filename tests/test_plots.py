"""mnist_helpers.plots: every figure has its title, labels and the right content.

matplotlib draws with the Agg backend (set in conftest.py), and every figure is
closed after each test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from mnist_helpers import (
    MNIST_MEAN,
    MNIST_STD,
    plot_confusion_matrix,
    plot_history,
    show_image_pixels,
    show_images,
    show_predictions,
)


def _texts(fig: Figure) -> list[str]:
    return [text.get_text() for text in fig.axes[0].texts]


def _shown_pixels(fig: Figure) -> np.ndarray:
    return np.asarray(fig.axes[0].images[0].get_array())


# --- show_images and show_predictions --------------------------------------------------


def test_show_images_title_and_labels():
    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    fig = show_images(images, labels, nrow=4, title="Some digits")
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title() == "Some digits"
    assert _texts(fig) == [str(int(label)) for label in labels]
    assert all(to_rgba(t.get_color()) == to_rgba("black") for t in fig.axes[0].texts)


def test_show_images_without_labels_writes_none():
    fig = show_images(torch.rand(3, 1, 28, 28))
    assert fig.axes[0].get_title() == "MNIST digits"
    assert _texts(fig) == []


def _image_cells(pixels: np.ndarray):
    """Bounding boxes (row0, row1, col0, col1) of the black images in a grid."""
    rows = np.flatnonzero((pixels == 0).any(axis=1))
    cols = np.flatnonzero((pixels == 0).any(axis=0))

    def runs(indices):
        breaks = np.flatnonzero(np.diff(indices) > 1)
        starts = np.r_[indices[0], indices[breaks + 1]]
        ends = np.r_[indices[breaks], indices[-1]]
        return list(zip(starts, ends))

    return [(r0, r1, c0, c1) for r0, r1 in runs(rows) for c0, c1 in runs(cols)]


@pytest.mark.parametrize("n, nrow", [(16, 8), (10, 4), (3, 8)])
def test_labels_sit_above_their_images_without_covering_any(n, nrow):
    images = torch.zeros(n, 28, 28)  # black images on the white grid
    fig = show_images(images, list(range(n)), nrow=nrow)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    cells = _image_cells(_shown_pixels(fig))
    assert len(cells) == min(n, nrow) * math.ceil(n / nrow)  # (the last row's blanks too)
    for i, text in enumerate(ax.texts):
        box = text.get_window_extent(renderer).transformed(ax.transData.inverted())
        (x0, x1), (y0, y1) = sorted((box.x0, box.x1)), sorted((box.y0, box.y1))
        row, col = divmod(i, nrow)
        r0, r1, c0, c1 = cells[row * nrow + col]
        # pixel k covers k - 0.5 .. k + 0.5 in data coordinates
        assert c0 - 0.5 < (x0 + x1) / 2 < c1 + 0.5  # centred over its image
        assert y1 <= r0 - 0.5  # entirely above its image
        for rr0, rr1, cc0, cc1 in cells:  # and over none of the images
            overlaps = x0 < cc1 + 0.5 and x1 > cc0 - 0.5 and y0 < rr1 + 0.5 and y1 > rr0 - 0.5
            assert not overlaps, f"label {i} covers the image at rows {rr0}-{rr1}"


def test_show_images_shows_the_pixels_of_each_image():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[1] = 255
    pixels = _shown_pixels(show_images(images, nrow=2))
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    # the two 28x28 images, side by side, in [0, 1]
    assert (pixels == 0).sum() == 28 * 28
    assert (pixels[:, pixels.shape[1] // 2 :] == 0).sum() == 0


def test_show_images_undoes_the_normalisation():
    raw = torch.full((2, 28, 28), 0.5)
    normalized = (raw - MNIST_MEAN) / MNIST_STD
    plain = _shown_pixels(show_images(raw))
    undone = _shown_pixels(show_images(normalized, normalized=True))
    np.testing.assert_allclose(undone, plain, atol=1e-6)


@pytest.mark.parametrize("shape", [(28, 28), (4, 3, 28, 28), (4, 784), (1, 4, 1, 28, 28)])
def test_show_images_rejects_a_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        show_images(torch.rand(shape))


def test_show_images_rejects_a_label_count_mismatch():
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        show_images(torch.rand(4, 28, 28), [1, 2, 3])


def test_show_predictions_colours_right_green_and_wrong_red():
    predictions = torch.tensor([1, 2, 3, 4, 5])
    targets = torch.tensor([1, 0, 3, 9, 5])
    fig = show_predictions(torch.rand(5, 1, 28, 28), predictions, targets, title="Guesses")
    assert fig.axes[0].get_title() == "Guesses"
    assert _texts(fig) == ["1 (1)", "2 (0)", "3 (3)", "4 (9)", "5 (5)"]
    colours = [to_rgba(text.get_color()) for text in fig.axes[0].texts]
    green, red = to_rgba("green"), to_rgba("red")
    assert colours == [green, red, green, red, green]


def test_show_predictions_accepts_lists():
    fig = show_predictions(torch.rand(2, 28, 28), [7, 7], [7, 1])
    assert [to_rgba(t.get_color()) for t in fig.axes[0].texts] == [
        to_rgba("green"),
        to_rgba("red"),
    ]


# --- show_image_pixels ---------------------------------------------------------------


def test_show_image_pixels_writes_every_value():
    image = torch.arange(784).reshape(28, 28).remainder(256).to(torch.uint8)
    fig = show_image_pixels(image.unsqueeze(0), title="Pixels")
    ax = fig.axes[0]
    annotations = [text for text in ax.texts if isinstance(text, Annotation)]
    assert len(annotations) == 784
    assert ax.get_title() == "Pixels"
    assert ax.get_xlabel() == "column" and ax.get_ylabel() == "row"
    for annotation in annotations:
        col, row = annotation.xy
        assert annotation.get_text() == str(int(image[row, col]))
    dark = [a for a in annotations if a.get_text() == "0"][0]
    bright = [a for a in annotations if a.get_text() == "255"][0]
    assert to_rgba(dark.get_color()) == to_rgba("white")  # readable on black
    assert to_rgba(bright.get_color()) == to_rgba("black")  # readable on white


def test_show_image_pixels_of_a_float_image():
    image = torch.zeros(28, 28)
    image[0, 0], image[0, 1] = 0.5, 1.0
    texts = _texts(show_image_pixels(image))
    assert len(texts) == 784
    assert texts[:3] == [".50", "1.00", "0"]


@pytest.mark.parametrize("shape", [(2, 28, 28), (784,), (2, 1, 28, 28)])
def test_show_image_pixels_rejects_a_batch(shape):
    with pytest.raises(ValueError, match="expected one image"):
        show_image_pixels(torch.zeros(shape))


# --- plot_history ---------------------------------------------------------------------


def test_plot_history():
    history = {
        "train_loss": [0.9, 0.5, 0.3],
        "train_acc": [0.7, 0.85, 0.9],
        "val_loss": [0.6, 0.4, 0.45],
        "val_acc": [0.8, 0.88, 0.87],
        "seconds": [1.0, 1.0, 1.0],
    }
    fig = plot_history(history, title="My run")
    assert fig.get_suptitle() == "My run"
    loss, acc = fig.axes
    assert loss.get_title() == "Loss" and acc.get_title() == "Accuracy"
    assert loss.get_xlabel() == acc.get_xlabel() == "epoch"
    assert loss.get_ylabel() and acc.get_ylabel() == "accuracy (%)"
    for ax, keys, scale in [
        (loss, ("train_loss", "val_loss"), 1),
        (acc, ("train_acc", "val_acc"), 100),
    ]:
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == ["training", "validation"]
        for line, key in zip(lines, keys):
            assert list(line.get_xdata()) == [1, 2, 3]
            np.testing.assert_allclose(line.get_ydata(), [scale * v for v in history[key]])
        assert ax.get_legend() is not None


# --- plot_confusion_matrix --------------------------------------------------------------


def test_plot_confusion_matrix_counts():
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predictions = torch.tensor([0, 0, 1, 1, 1, 2, 0, 2, 2])
    fig = plot_confusion_matrix(targets, predictions, num_classes=3, title="Counts")
    ax = fig.axes[0]
    assert ax.get_title() == "Counts"
    assert ax.get_xlabel() == "predicted digit" and ax.get_ylabel() == "true digit"
    expected = np.zeros((3, 3), dtype=int)
    for t, p in zip(targets.tolist(), predictions.tolist()):
        expected[t, p] += 1
    assert expected.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 3]]
    shown = np.array([int(text) for text in _texts(fig)]).reshape(3, 3)  # row by row
    assert shown.tolist() == expected.tolist()
    np.testing.assert_array_equal(np.asarray(ax.collections[0].get_array()).reshape(3, 3), expected)


def test_plot_confusion_matrix_of_ten_digits_sums_to_the_sample_count():
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 10, (500,), generator=generator)
    predictions = torch.where(torch.rand(500, generator=generator) < 0.8, targets, 3)
    fig = plot_confusion_matrix(targets, predictions)
    shown = np.array([int(text) for text in _texts(fig)]).reshape(10, 10)
    assert shown.sum() == 500
    assert shown.sum(axis=1).tolist() == torch.bincount(targets, minlength=10).tolist()
    assert shown.sum(axis=0).tolist() == torch.bincount(predictions, minlength=10).tolist()


@pytest.mark.parametrize(
    "targets, predictions",
    [
        ([0, 1, 2], [0, 1]),  # different lengths
        ([0, 1, 2], [1]),  # would broadcast
        ([[0, 1]], [[0, 1]]),  # not 1-D
        ([0, 1, 12], [0, 1, 2]),  # a label out of range
        ([0, 1, 2], [0, -1, 2]),
    ],
)
def test_plot_confusion_matrix_rejects_bad_input(targets, predictions):
    with pytest.raises(ValueError):
        plot_confusion_matrix(torch.tensor(targets), torch.tensor(predictions))
