"""A drawing canvas for Jupyter and Colab (chapter 10).

``DigitCanvas(model)`` shows a box to draw a digit in, with a Predict and a Clear
button. Letting go of the mouse, or Predict, sends the drawing (a PNG) to the
kernel, where :func:`~mnist_helpers.digits.predict_digit` prepares it and asks
``model``; the prepared 28x28 image and the ten probabilities come back to the
canvas. Nothing waits for a click: the kernel stays free between predictions. Built
on anywidget, which works in JupyterLab, Notebook 7 and Colab (where it enables the
widget manager itself). The box is the one of the page "Draw a digit": both load
``static/draw/draw.js``.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import anywidget
import torch
import traitlets
from PIL import Image

from .data import MNIST_MEAN, MNIST_STD
from .digits import DigitImageError, predict_digit

__all__ = ["DigitCanvas"]

#: The canvas's JavaScript and CSS: the files the page "Draw a digit" loads too
#: (``book/draw.md``), shipped with the package. The script defines ``drawDigit``;
#: as the widget's module it only has to export its ``render``.
STATIC = Path(__file__).resolve().parent / "static" / "draw"
_ESM = (STATIC / "draw.js").read_text(encoding="utf-8") + (
    "\nexport default { render: drawDigit.render };\n"
)
_CSS = (STATIC / "draw.css").read_text(encoding="utf-8")


def _decode(data_url: str) -> Image.Image:
    """A PIL image from a ``data:image/png;base64,...`` URL."""
    _, _, payload = data_url.partition("base64,")
    return Image.open(io.BytesIO(base64.b64decode(payload)))


class DigitCanvas(anywidget.AnyWidget):
    """Draw a digit and see what ``model`` reads, with the prepared image and
    the ten probabilities. ``unsure`` is the top probability below which the
    answer is flagged as unsure."""

    _esm = _ESM
    _css = _CSS
    drawing = traitlets.Unicode("").tag(sync=True)  # the canvas, a PNG data URL
    request = traitlets.Int(0).tag(sync=True)  # counts the drawings sent
    prepared = traitlets.List(traitlets.Float()).tag(sync=True)  # 784 values, 0..1
    probabilities = traitlets.List(traitlets.Float()).tag(sync=True)
    digit = traitlets.Int(-1).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)  # why there is no answer, if so
    unsure = traitlets.Float(0.9).tag(sync=True)
    answered = traitlets.Int(0).tag(sync=True)  # counts the answers

    def __init__(self, model: torch.nn.Module, unsure: float = 0.9, **kwargs):
        super().__init__(unsure=unsure, **kwargs)
        self.model = model
        self.observe(self._predict, names="request")

    def _predict(self, change=None) -> None:
        """Read ``drawing`` and publish the answer (called for each drawing)."""
        if not self.drawing:
            return
        try:
            prediction = predict_digit(self.model, _decode(self.drawing))
        except DigitImageError as error:
            self.digit = -1
            self.probabilities = []
            self.prepared = []
            self.error = str(error)
        else:
            image = prediction.image[0, 0] * MNIST_STD + MNIST_MEAN
            self.prepared = image.clamp(0, 1).flatten().tolist()
            self.probabilities = prediction.probabilities.tolist()
            self.digit = prediction.digit
            self.error = ""
        self.answered += 1  # last: the canvas redraws when this changes
