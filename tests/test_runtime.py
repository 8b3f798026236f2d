"""mnist_helpers.runtime: device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mnist_helpers import get_device, seed_everything, seed_worker, synchronize


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [
        (True, True, "cuda"),
        (True, False, "cuda"),
        (False, True, "mps"),
        (False, False, "cpu"),
    ],
)
def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    device = get_device()
    assert isinstance(device, torch.device) and device.type == expected


def test_get_device_on_this_machine():
    device = get_device()
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert device == torch.device("cpu")
    assert torch.ones(2, device=device).sum().item() == 2  # a device that works


def _draws(generator: torch.Generator):
    return (
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        [random.random() for _ in range(3)],
        torch.randperm(10, generator=generator).tolist(),
    )


def test_seed_everything_makes_every_source_reproducible():
    first = _draws(seed_everything(123))
    again = _draws(seed_everything(123))
    other = _draws(seed_everything(124))
    assert first == again
    for a, b in zip(first, other):  # each source depends on the seed
        assert a != b


def test_seed_everything_returns_a_seeded_generator():
    generator = seed_everything(7)
    assert isinstance(generator, torch.Generator)
    assert generator.initial_seed() == 7
    assert torch.initial_seed() == 7
    # Independent of the global generator: drawing from one does not move the other.
    torch.rand(100)
    assert torch.equal(
        torch.randperm(20, generator=generator),
        torch.randperm(20, generator=torch.Generator().manual_seed(7)),
    )


def test_seed_worker_seeds_numpy_and_random_from_torch():
    torch.manual_seed(2**32 + 5)  # worker seeds exceed 32 bits; NumPy needs them reduced
    seed_worker(0)
    assert np.random.rand() == np.random.RandomState(5).rand()
    assert random.random() == random.Random(5).random()
    torch.manual_seed(6)
    seed_worker(1)
    assert np.random.rand() == np.random.RandomState(6).rand()


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "mps", torch.device("cpu")])
def test_synchronize_waits_for_the_right_device(monkeypatch, device):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append(("cuda", d)))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append(("mps", None)))
    synchronize(device)
    kind = torch.device(device).type
    if kind == "cpu":
        assert calls == []
    elif kind == "cuda":
        assert calls == [("cuda", torch.device(device))]
    else:
        assert calls == [("mps", None)]
