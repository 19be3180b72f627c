"""Analytic tilt series of Gaussian blobs, with any in-plane misalignment.

A 3D Gaussian ``A·exp(−|p − c|²/2σ²)`` projects along any ray direction to the 2D
Gaussian ``A·σ·√(2π)·exp(−|u − u_c|²/2σ²)``; so a tilt series of blobs can be
written down exactly, with no projector and no interpolation. That makes it an
independent reference for the alignment kernels (no inverse crime): the "raw"
images of a known misalignment are sampled directly, and a correct alignment plus
WBP must reproduce the reconstruction of the perfectly aligned series.

Geometry: volume coordinates ``(z, y, x)`` in voxels from the volume centre; at
tilt θ the aligned detector coordinate is ``x' = x·cos θ − z·sin θ`` (DESIGN.md §1)
and the row is ``y``. A raw image places aligned point ``a`` at ``M·a + s``
(:mod:`cryo_pipeline.ops.image_alignment`), so the raw value at ``q`` is the
aligned value at ``M⁻¹·(q − s)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianBlob", "blob_tilt_series", "random_blobs"]


@dataclass(frozen=True)
class GaussianBlob:
    """One blob: centre ``(z, y, x)`` in voxels from the volume centre, width ``sigma_px``, amplitude."""

    centre_zyx: tuple[float, float, float]
    sigma_px: float
    amplitude: float = 1.0


def random_blobs(n: int, *, radius_px: float, sigma_range_px: tuple[float, float], seed: int) -> list[GaussianBlob]:
    """``n`` blobs with centres uniform in a ball of ``radius_px`` and widths uniform in ``sigma_range_px``."""
    rng = np.random.default_rng(seed)
    blobs = []
    while len(blobs) < n:
        centre = rng.uniform(-radius_px, radius_px, size=3)
        if np.linalg.norm(centre) <= radius_px:
            blobs.append(GaussianBlob(tuple(float(c) for c in centre), float(rng.uniform(*sigma_range_px)),
                                      float(rng.uniform(0.5, 1.5))))
    return blobs


def blob_tilt_series(
    blobs: Sequence[GaussianBlob],
    angles_deg: Sequence[float],
    *,
    image_shape_yx: tuple[int, int],
    matrices_xy: np.ndarray | None = None,
    shifts_xy_px: np.ndarray | None = None,
) -> np.ndarray:
    """The exact projections of ``blobs``, sampled at pixel centres: ``(n_tilts, h, w)`` float32.

    Parameters
    ----------
    blobs : the objects
    angles_deg : `(n_tilts,)` tilt angles
    image_shape_yx : ``(h, w)`` of each (raw) image
    matrices_xy : `(n_tilts, 2, 2)` ``M`` per image (default identity: an aligned series)
    shifts_xy_px : `(n_tilts, 2)` ``s`` per image (default 0)
    """
    angles = np.radians(np.asarray(angles_deg, dtype=np.float64))
    n = angles.size
    matrices = np.repeat(np.eye(2)[None], n, 0) if matrices_xy is None else np.asarray(matrices_xy, float)
    shifts = np.zeros((n, 2)) if shifts_xy_px is None else np.asarray(shifts_xy_px, float)
    h, w = image_shape_yx
    qy, qx = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    series = np.zeros((n, h, w), dtype=np.float64)
    for k in range(n):
        inverse = np.linalg.inv(matrices[k])
        ax = inverse[0, 0] * (qx - shifts[k, 0]) + inverse[0, 1] * (qy - shifts[k, 1])
        ay = inverse[1, 0] * (qx - shifts[k, 0]) + inverse[1, 1] * (qy - shifts[k, 1])
        scale = abs(np.linalg.det(inverse))  # a stretched raw image keeps the line integral's density per pixel
        for blob in blobs:
            z, y, x = blob.centre_zyx
            u = x * math.cos(angles[k]) - z * math.sin(angles[k])
            r2 = (ax - u) ** 2 + (ay - y) ** 2
            peak = blob.amplitude * blob.sigma_px * math.sqrt(2 * math.pi)
            series[k] += scale * peak * np.exp(-r2 / (2 * blob.sigma_px**2))
    return series.astype(np.float32)
