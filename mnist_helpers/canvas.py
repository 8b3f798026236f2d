"""A drawing canvas for Jupyter and Colab (chapter 10).

``DigitCanvas(model)`` shows a box to draw a digit in, with a Predict and a Clear
button. Predict sends the drawing (a PNG) to the kernel, where
:func:`~mnist_helpers.predict_digit` prepares it and asks ``model``; the prepared
28x28 image and the ten probabilities come back to the canvas. Nothing waits for a
click: the kernel stays free between predictions. Built on anywidget, which works
in JupyterLab, Notebook 7 and Colab (where it enables the widget manager itself).
"""

from __future__ import annotations

import base64
import io

import anywidget
import torch
import traitlets
from PIL import Image

from .data import MNIST_MEAN, MNIST_STD
from .digits import DigitImageError, predict_digit

__all__ = ["DigitCanvas"]

_ESM = """
const SIZE = 28;

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "mnist-draw";
  root.innerHTML = `
    <div>
      <canvas class="mnist-draw-canvas" width="280" height="280"></canvas>
      <div class="mnist-draw-buttons">
        <button type="button" class="mnist-draw-predict">Predict</button>
        <button type="button" class="mnist-draw-clear">Clear</button>
      </div>
    </div>
    <div>
      <p class="mnist-draw-answer">Draw a digit, then press Predict.</p>
      <canvas class="mnist-draw-preview" width="112" height="112"></canvas>
      <div class="mnist-draw-bars"></div>
    </div>`;
  el.appendChild(root);
  const canvas = root.querySelector(".mnist-draw-canvas");
  const preview = root.querySelector(".mnist-draw-preview");
  const answer = root.querySelector(".mnist-draw-answer");
  const bars = root.querySelector(".mnist-draw-bars");
  const context = canvas.getContext("2d");
  for (let d = 0; d < 10; d++) {
    bars.insertAdjacentHTML("beforeend",
      `<div class="mnist-draw-bar"><span></span><small>${d}</small></div>`);
  }

  function clear() {
    context.fillStyle = "white";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.lineWidth = 20;
    context.lineCap = context.lineJoin = "round";
    context.strokeStyle = "black";
    preview.getContext("2d").clearRect(0, 0, preview.width, preview.height);
    bars.querySelectorAll("span").forEach((s) => { s.style.height = "0%"; });
    answer.textContent = "Draw a digit, then press Predict.";
  }

  function show() {
    const message = model.get("message");
    const probabilities = model.get("probabilities");
    const image = model.get("prepared");
    answer.textContent = message;
    bars.querySelectorAll("span").forEach((s, d) => {
      s.style.height = `${100 * (probabilities[d] || 0)}%`;
      s.classList.toggle("mnist-draw-best", d === model.get("digit"));
    });
    const tile = document.createElement("canvas");
    tile.width = tile.height = SIZE;
    const pixels = tile.getContext("2d").createImageData(SIZE, SIZE);
    image.forEach((v, i) => pixels.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i));
    tile.getContext("2d").putImageData(pixels, 0, 0);
    const small = preview.getContext("2d");
    small.imageSmoothingEnabled = false;
    small.clearRect(0, 0, preview.width, preview.height);
    if (image.length) small.drawImage(tile, 0, 0, preview.width, preview.height);
  }

  let drawing = false;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (canvas.width / box.width),
            (event.clientY - box.top) * (canvas.height / box.height)];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    context.beginPath();
    context.moveTo(...point(event));
    context.lineTo(...point(event));
    context.stroke();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    context.lineTo(...point(event));
    context.stroke();
  });
  const stop = () => { drawing = false; };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  root.querySelector(".mnist-draw-predict").addEventListener("click", () => {
    answer.textContent = "Asking the network...";
    model.set("drawing", canvas.toDataURL("image/png"));
    model.set("request", model.get("request") + 1);
    model.save_changes();
  });
  root.querySelector(".mnist-draw-clear").addEventListener("click", clear);
  model.on("change:answered", show);
  clear();
}

export default { render };
"""

_CSS = """
.mnist-draw { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
.mnist-draw-canvas { width: 280px; height: 280px; border: 2px solid #555;
  border-radius: 4px; background: white; cursor: crosshair; touch-action: none; }
.mnist-draw-buttons { display: flex; gap: 0.5rem; margin-top: 0.5rem; }
.mnist-draw-buttons button { padding: 0.3rem 1rem; cursor: pointer; }
.mnist-draw-answer { font-weight: 600; max-width: 20rem; min-height: 1.5em; }
.mnist-draw-preview { width: 112px; height: 112px; background: black;
  image-rendering: pixelated; }
.mnist-draw-bars { display: flex; gap: 4px; height: 100px; align-items: flex-end;
  margin-top: 0.5rem; }
.mnist-draw-bar { position: relative; width: 20px; height: 100%; display: flex;
  flex-direction: column; justify-content: flex-end;
  background: rgba(128, 128, 128, 0.12); }
.mnist-draw-bar span { display: block; width: 100%; height: 0; background: #888; }
.mnist-draw-bar span.mnist-draw-best { background: #1f77b4; }
.mnist-draw-bar small { position: absolute; bottom: -1.3em; width: 100%;
  text-align: center; }
"""


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
    request = traitlets.Int(0).tag(sync=True)  # counts the Predict clicks
    prepared = traitlets.List(traitlets.Float()).tag(sync=True)  # 784 values, 0..1
    probabilities = traitlets.List(traitlets.Float()).tag(sync=True)
    digit = traitlets.Int(-1).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    answered = traitlets.Int(0).tag(sync=True)  # counts the answers

    def __init__(self, model: torch.nn.Module, unsure: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.unsure = unsure
        self.observe(self._predict, names="request")

    def _predict(self, change=None) -> None:
        """Read ``drawing`` and publish the answer (called on each Predict)."""
        if not self.drawing:
            return
        try:
            prediction = predict_digit(self.model, _decode(self.drawing))
        except DigitImageError as error:
            self.digit, self.probabilities, self.prepared = -1, [], []
            self.message = str(error)
            self.answered += 1
            return
        image = prediction.image[0, 0] * MNIST_STD + MNIST_MEAN
        best = float(prediction.probabilities[prediction.digit])
        note = "" if best >= self.unsure else " (not sure: is it a digit?)"
        self.prepared = image.clamp(0, 1).flatten().tolist()
        self.probabilities = prediction.probabilities.tolist()
        self.digit = prediction.digit
        self.message = f"The network reads {prediction.digit} ({best:.0%}){note}."
        self.answered += 1  # last: the canvas redraws when this changes
