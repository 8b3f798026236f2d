"""Choosing a device and seeding every source of randomness (chapters 1, 3 and 9)."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "seed_worker", "synchronize"]


def get_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA).

    Returns a seeded :class:`torch.Generator` to pass to a DataLoader (or a
    :class:`~mnist_helpers.TensorLoader`) so its shuffling is reproducible too.
    With ``num_workers > 0`` the same generator makes the workers reproducible:
    since PyTorch 1.9 each worker seeds PyTorch, ``random`` and NumPy itself.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for a DataLoader: seed NumPy and ``random`` in each worker
    from the seed PyTorch gave that worker. PyTorch 1.9 and newer do this
    themselves; it is harmless there and needed only on older versions."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def synchronize(device: torch.device | str) -> None:
    """Wait until all work queued on ``device`` has finished.

    GPUs run asynchronously: time a piece of GPU work only after calling
    this. On the CPU it does nothing."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
