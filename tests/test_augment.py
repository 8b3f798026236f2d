"""Batch augmentations of chapter 11: shapes, reproducibility, what each distortion
does to a known image, and clear errors for bad input."""

from __future__ import annotations

import pytest
import torch

from mnist_helpers.augment import (
    affine_grid_batch,
    augment,
    elastic_grid_offsets,
    random_affine,
)


def _dots(n=4, size=28):
    """``n`` images, each blank but one bright 2x2 square in the middle."""
    X = torch.zeros(n, 1, size, size)
    X[:, 0, 13:15, 13:15] = 1.0
    return X


def _centre_of_mass(X):
    rows = torch.arange(X.shape[2], dtype=torch.float32)
    mass = X.sum(dim=(1, 2, 3))
    y = (X.sum(dim=3)[:, 0] * rows).sum(1) / mass
    x = (X.sum(dim=2)[:, 0] * rows).sum(1) / mass
    return y, x


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_identity_settings_give_back_the_images():
    X = torch.rand(3, 1, 28, 28)
    out = augment(X, degrees=0, scale=0, shift=0, alpha=0, generator=_gen())
    assert torch.allclose(out, X, atol=1e-5)


def test_shifts_stay_within_the_limit_and_vary_per_image():
    X = _dots(64)
    out = random_affine(X, degrees=0, scale=0, shift=3, generator=_gen())
    y, x = _centre_of_mass(out)
    assert out.shape == X.shape
    assert ((y - 13.5).abs() <= 3.01).all() and ((x - 13.5).abs() <= 3.01).all()
    assert (x - 13.5).abs().max() > 1.5 and len(set(x.round().tolist())) > 3


def test_rotation_and_scaling_keep_the_centre_and_change_the_shape():
    X = torch.zeros(8, 1, 28, 28)
    X[:, 0, 13:15, 6:22] = 1.0  # a horizontal bar through the centre
    out = random_affine(X, degrees=30, scale=0.2, shift=0, generator=_gen())
    y, x = _centre_of_mass(out)
    assert torch.allclose(y, torch.full_like(y, 13.5), atol=0.3)
    assert torch.allclose(x, torch.full_like(x, 13.5), atol=0.3)
    rows_lit = (out[:, 0] > 0.2).any(dim=2).sum(dim=1)
    cols_lit = (out[:, 0] > 0.2).any(dim=1).sum(dim=1)
    assert rows_lit.max() > 4  # a bar rotated by many degrees covers more rows
    assert len(set(cols_lit.tolist())) > 2  # and angle and scale vary per image


def test_elastic_offsets_are_smooth_and_scale_with_alpha():
    X = torch.zeros(16, 1, 28, 28)
    small = elastic_grid_offsets(X, alpha=4, sigma=4, generator=_gen())
    large = elastic_grid_offsets(X, alpha=40, sigma=4, generator=_gen())
    assert small.shape == (16, 28, 28, 2)
    assert torch.allclose(large, small * 10, atol=1e-6)
    # neighbouring pixels move almost alike: the field is smooth
    step = (large[:, 1:] - large[:, :-1]).abs().mean()
    assert step < large.abs().mean() / 3
    assert large.abs().max() * 14 > 0.2  # but it moves pixels (grid units -> pixels)


def test_border_padding_keeps_a_normalised_background():
    background = -0.4242
    X = torch.full((4, 1, 28, 28), background)
    out = augment(X, degrees=15, scale=0.15, shift=3, alpha=30, generator=_gen())
    assert torch.allclose(out, X, atol=1e-5)


def test_reproducible_from_the_generator():
    X = torch.rand(5, 1, 28, 28)
    a = augment(X, alpha=20, generator=_gen(1))
    b = augment(X, alpha=20, generator=_gen(1))
    c = augment(X, alpha=20, generator=_gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_grid_has_one_affine_map_per_image():
    grid = affine_grid_batch(torch.zeros(6, 1, 28, 28), generator=_gen())
    assert grid.shape == (6, 28, 28, 2)
    assert not torch.allclose(grid[0], grid[1])


@pytest.mark.parametrize(
    "X, match",
    [
        (torch.zeros(4, 28, 28), r"\(N, 1, H, W\).*unsqueeze"),
        (torch.zeros(4, 3, 28, 28), r"\(N, 1, H, W\)"),
        (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "float"),
    ],
)
def test_bad_input_says_what_to_do(X, match):
    with pytest.raises(ValueError, match=match):
        augment(X)
