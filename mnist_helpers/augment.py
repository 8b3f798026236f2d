"""Random distortions of whole batches of images (chapter 11).

Each function takes a batch ``X`` of shape ``(N, 1, H, W)``, raw or normalised, and
returns a distorted copy of the same shape, every image distorted differently. The
work is a few tensor operations on the whole batch (one ``grid_sample`` call), with no
Python loop over images (chapter 11's ablation times what it adds to training), and
the random numbers come from the ``generator`` given, so runs are reproducible.

* :func:`random_affine`: a random rotation, scaling and shift per image.
* :func:`elastic_grid_offsets`: smooth random displacement fields (Simard et al.,
  2003), to add to an affine sampling grid.
* :func:`augment`: both together, resampled once.

Pixels drawn from outside the image repeat its border (``padding_mode="border"``):
background for raw and for normalised images alike wherever the border is
background, as it is for all but about 1.4% of the training digits (chapter 11).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["affine_grid_batch", "augment", "elastic_grid_offsets", "random_affine"]


def _check_batch(X: torch.Tensor) -> None:
    if X.dim() != 4 or X.shape[1] != 1:
        raise ValueError(
            f"expected a batch of images of shape (N, 1, H, W), got {tuple(X.shape)}: "
            "add the channel dimension with X.unsqueeze(1)"
        )
    if not X.is_floating_point():
        raise ValueError(
            f"expected floating-point images, got {X.dtype}: convert with X.float() / 255"
        )


def _uniform(n: int, limit: float, generator, device) -> torch.Tensor:
    """``n`` numbers drawn uniformly from ``[-limit, limit]``."""
    return (torch.rand(n, generator=generator) * 2 - 1).mul(limit).to(device)


def affine_grid_batch(
    X: torch.Tensor,
    degrees: float = 10.0,
    scale: float = 0.1,
    shift: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The sampling grid ``(N, H, W, 2)`` of a random affine map per image:
    a rotation by up to ``degrees``, a scaling by a factor in
    ``[1 - scale, 1 + scale]`` and a shift of up to ``shift`` pixels along
    each axis."""
    _check_batch(X)
    n, _, height, width = X.shape
    angle = _uniform(n, math.radians(degrees), generator, X.device)
    factor = 1 + _uniform(n, scale, generator, X.device)
    # grid coordinates run from -1 to 1 across the image:
    # a pixel is 2 / size of them
    dx = _uniform(n, shift * 2 / width, generator, X.device)
    dy = _uniform(n, shift * 2 / height, generator, X.device)
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack(
        [torch.stack([cos, -sin, dx], 1), torch.stack([sin, cos, dy], 1)], 1
    )  # (N, 2, 3): maps each output pixel to where it is read from
    return F.affine_grid(theta, list(X.shape), align_corners=False)


def _blur_matrix(size: int, sigma: float, device) -> torch.Tensor:
    """``(size, size)`` matrix ``B`` such that ``B @ v`` blurs ``v`` with a Gaussian
    of ``sigma`` pixels (what lies beyond the edges counts as zero)."""
    x = torch.arange(size, dtype=torch.float32, device=device)
    B = torch.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * sigma**2))
    radius = torch.arange(-size + 1, size, dtype=torch.float32, device=device)
    return B / torch.exp(-(radius**2) / (2 * sigma**2)).sum()


def elastic_grid_offsets(
    X: torch.Tensor,
    alpha: float = 8.0,
    sigma: float = 3.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random elastic displacements ``(N, H, W, 2)`` in grid units: uniform
    noise in ``[-1, 1]`` per pixel and direction, blurred by a Gaussian of
    ``sigma`` pixels and multiplied by ``alpha`` (Simard et al., 2003); the blur
    averages the noise, so they are far smaller than ``alpha`` pixels. Add them
    to a sampling grid."""
    _check_batch(X)
    n, _, height, width = X.shape
    noise = torch.rand(n, 2, height, width, generator=generator) * 2 - 1
    blur_rows = _blur_matrix(height, sigma, X.device)
    blur_cols = _blur_matrix(width, sigma, X.device)
    # (N, 2, H, W): each field blurred along its rows and its columns
    fields = blur_rows @ noise.to(X.device) @ blur_cols.T * alpha
    scale = torch.tensor([2 / width, 2 / height], device=X.device)
    # pixels -> grid units, with (x, y) last
    return fields.permute(0, 2, 3, 1) * scale


def random_affine(
    X: torch.Tensor,
    degrees: float = 10.0,
    scale: float = 0.1,
    shift: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``X`` with every image rotated, scaled and shifted at random (see
    :func:`affine_grid_batch`), resampled bilinearly."""
    grid = affine_grid_batch(X, degrees, scale, shift, generator)
    return F.grid_sample(X, grid, padding_mode="border", align_corners=False)


def augment(
    X: torch.Tensor,
    degrees: float = 10.0,
    scale: float = 0.1,
    shift: float = 2.0,
    alpha: float = 0.0,
    sigma: float = 3.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random affine map per image and, when ``alpha > 0``, an elastic
    distortion on top, both applied in one resampling."""
    grid = affine_grid_batch(X, degrees, scale, shift, generator)
    if alpha > 0:
        grid = grid + elastic_grid_offsets(X, alpha, sigma, generator)
    return F.grid_sample(X, grid, padding_mode="border", align_corners=False)
