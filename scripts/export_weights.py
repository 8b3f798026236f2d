"""Export the book's final model for the page "Draw a digit" (book/draw.md).

    python scripts/export_weights.py           # writes book/_static/draw/weights.js

The page runs with no server, even opened from a file, so the weights travel in a
JavaScript file rather than a binary one. To keep it small, each weight matrix is
stored as 8-bit integers with one scale per row (``w ~= scale[row] * q``, ``q`` in
-127..127); biases and scales stay 32-bit floats. The script prints the accuracy on
the 10,000 test images before and after this compression and records both in the
file.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_JS = ROOT / "book" / "_static" / "draw" / "weights.js"
CHECKPOINT = ROOT / "notebooks" / "checkpoints" / "mlp.pt"
HEADER = "// The book's final model, exported by scripts/export_weights.py: do not edit.\n"


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def quantize(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-bit integers and one float32 scale per row such that
    ``weight ~= scales[:, None] * q``."""
    scales = np.abs(weight).max(axis=1) / 127
    scales[scales == 0] = 1
    q = np.clip(np.round(weight / scales[:, None]), -127, 127).astype(np.int8)
    return q, scales.astype(np.float32)


def linear_layers(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """The model's linear layers in the order the forward pass uses them."""
    return [*model.hidden, model.output]


def export(model: torch.nn.Module, accuracies: dict[str, float]) -> str:
    """The text of ``weights.js`` for ``model``."""
    layers = []
    for layer in linear_layers(model):
        q, scales = quantize(layer.weight.detach().cpu().numpy())
        layers.append(
            {
                "inputs": layer.in_features,
                "outputs": layer.out_features,
                "weights": _b64(q),
                "scales": _b64(scales),
                "bias": _b64(layer.bias.detach().cpu().numpy().astype("<f4")),
            }
        )
    data = {"layers": layers, **accuracies}
    return f"{HEADER}window.MNIST_MLP = {json.dumps(data)};\n"


def read_weights(path: str | Path = WEIGHTS_JS) -> tuple[list[dict], dict]:
    """The dequantised layers of ``weights.js`` (``weight`` and ``bias`` as float32
    arrays, as the page uses them) and the rest of its data."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(re.search(r"window\.MNIST_MLP = (\{.*\});", text)[1])
    layers = []
    for layer in data.pop("layers"):
        shape = (layer["outputs"], layer["inputs"])
        q = np.frombuffer(base64.b64decode(layer["weights"]), np.int8).reshape(shape)
        scales = np.frombuffer(base64.b64decode(layer["scales"]), "<f4")
        bias = np.frombuffer(base64.b64decode(layer["bias"]), "<f4")
        layers.append({"weight": (q * scales[:, None]).astype(np.float32), "bias": bias})
    return layers, data


def load_into(model: torch.nn.Module, layers: list[dict]) -> torch.nn.Module:
    """Copy dequantised ``layers`` (from :func:`read_weights`) into ``model``."""
    with torch.no_grad():
        for layer, values in zip(linear_layers(model), layers, strict=True):
            layer.weight.copy_(torch.from_numpy(values["weight"]))
            layer.bias.copy_(torch.from_numpy(values["bias"].copy()))
    return model.eval()


def test_accuracy(model: torch.nn.Module) -> float:
    from mnist_helpers import load_tensors, normalize

    images, labels = load_tensors(train=False)
    model.eval()
    with torch.no_grad():
        predicted = model(normalize(images)).argmax(dim=1)
    return (predicted == labels).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    from mnist_helpers import MLP, load_final_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=CHECKPOINT,
        help="chapter 4's checkpoint (trained first when missing)",
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_JS)
    args = parser.parse_args(argv)
    model = load_final_model(checkpoint_path=args.checkpoint).eval()
    float_accuracy = test_accuracy(model)
    text = export(model, {"float_accuracy": round(float_accuracy, 4)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    compressed = load_into(MLP(), read_weights(args.out)[0])
    int8_accuracy = test_accuracy(compressed)
    text = export(
        model, {"float_accuracy": round(float_accuracy, 4), "accuracy": round(int8_accuracy, 4)}
    )
    args.out.write_text(text, encoding="utf-8")
    print(f"test accuracy: {float_accuracy:.2%} (float32), {int8_accuracy:.2%} (8-bit)")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
