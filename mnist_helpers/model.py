"""The network of the book: a multi-layer perceptron (built in chapter 2)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoints import model_from_checkpoint

__all__ = ["MLP"]


class MLP(nn.Module):
    """784-512-512-10 with ReLU and dropout 0.2 by default: the original architecture.

    ``hidden_sizes`` and ``dropout`` change the shape. The input is a batch of
    images of any shape whose values per sample number ``in_features`` (e.g.
    ``(N, 1, 28, 28)`` or ``(N, 784)``); the output is ``(N, num_classes)`` logits.

    :attr:`config` describes the network; checkpoints store it, so
    :meth:`from_checkpoint` rebuilds a saved model from the file alone.
    """

    def __init__(
        self,
        hidden_sizes: tuple[int, ...] = (512, 512),
        dropout: float = 0.2,
        in_features: int = 28 * 28,
        num_classes: int = 10,
    ):
        super().__init__()
        self.in_features = in_features
        self.hidden_sizes = tuple(int(size) for size in hidden_sizes)
        self.num_classes = num_classes
        sizes = [in_features, *hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:]))
        self.output = nn.Linear(sizes[-1], num_classes)
        self.dropout = nn.Dropout(dropout)

    @property
    def config(self) -> dict:
        """The arguments that build this network again: ``MLP(**model.config)``."""
        return {
            "hidden_sizes": list(self.hidden_sizes),
            "dropout": self.dropout.p,
            "in_features": self.in_features,
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> MLP:
        """The model saved at ``path`` (by :func:`~mnist_helpers.save_checkpoint` or
        :func:`~mnist_helpers.fit`), built with the sizes stored in the file and
        returned on ``map_location`` in evaluation mode. Raises
        :class:`~mnist_helpers.CheckpointError` when the file cannot be used."""
        return model_from_checkpoint(cls, path, map_location)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1:].numel() != self.in_features:
            raise ValueError(
                f"MLP expects a batch of images with {self.in_features} values each, "
                f"e.g. shape (N, 1, 28, 28) or (N, {self.in_features}); got shape "
                f"{tuple(x.shape)}. Add a batch dimension with x.unsqueeze(0) for a "
                "single image."
            )
        x = x.flatten(start_dim=1)
        for layer in self.hidden:
            x = self.dropout(torch.relu(layer(x)))
        return self.output(x)
