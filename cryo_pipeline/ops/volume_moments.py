"""Streaming moments of an (estimate, reference) pair of volumes, z-slab by z-slab.

One pass over z-slabs of :data:`SLAB_VOXELS` voxels (float64 per slab; memory maps are read a
slab at a time) gathers the means, variances and covariance — merged slab by slab with Chan
et al.'s pairwise update, so a large mean costs no precision — the reference's range and
Σ(e − g)², from which :mod:`cryo_pipeline.ops.metrics` derives the papers' PSNR, the global
SSIM and the affine fit without a float64 copy of either volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Moments", "as_3d", "check_pair", "moments", "z_slabs"]

#: Voxels per z-slab of the streaming passes (16 MiB of float64).
SLAB_VOXELS = 1 << 21


@dataclass
class Moments:
    """Streaming moments of an (estimate, reference) pair over every voxel (``lo``, ``hi``: the reference's range;
    ``lo_e``, ``hi_e``: the estimate's)."""

    n: int = 0
    mean_e: float = 0.0
    mean_g: float = 0.0
    m2_e: float = 0.0
    m2_g: float = 0.0
    c_eg: float = 0.0
    sse: float = 0.0
    lo: float = np.inf
    hi: float = -np.inf
    lo_e: float = np.inf
    hi_e: float = -np.inf

    def add(self, e: np.ndarray, g: np.ndarray) -> None:
        """Merge one slab (float64 arrays of equal shape)."""
        n_s = e.size
        mean_e, mean_g = float(e.mean()), float(g.mean())
        de, dg = e - mean_e, g - mean_g
        m2_e, m2_g, c_eg = float(np.vdot(de, de)), float(np.vdot(dg, dg)), float(np.vdot(de, dg))
        diff = e - g
        self.sse += float(np.vdot(diff, diff))
        self.lo, self.hi = min(self.lo, float(g.min())), max(self.hi, float(g.max()))
        self.lo_e, self.hi_e = min(self.lo_e, float(e.min())), max(self.hi_e, float(e.max()))
        n = self.n + n_s
        delta_e, delta_g = mean_e - self.mean_e, mean_g - self.mean_g
        weight = self.n * n_s / n
        self.mean_e += delta_e * n_s / n
        self.mean_g += delta_g * n_s / n
        self.m2_e += m2_e + delta_e * delta_e * weight
        self.m2_g += m2_g + delta_g * delta_g * weight
        self.c_eg += c_eg + delta_e * delta_g * weight
        self.n = n


def z_slabs(depth: int, plane: int) -> list[tuple[int, int]]:
    """``[(z0, z1), ...]`` covering ``range(depth)`` in slabs of about :data:`SLAB_VOXELS` voxels."""
    step = max(1, SLAB_VOXELS // max(1, plane))
    return [(z, min(depth, z + step)) for z in range(0, depth, step)]


def check_pair(estimate: np.ndarray, ground_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two volumes as arrays (memory maps stay maps), same non-empty shape."""
    est, gt = np.asanyarray(estimate), np.asanyarray(ground_truth)
    if est.shape != gt.shape:
        raise ValueError(
            f"estimate shape {est.shape} and ground_truth shape {gt.shape} differ; "
            "crop or resample one to match the other"
        )
    if est.size == 0:
        raise ValueError(f"volumes are empty (shape {est.shape})")
    return est, gt


def as_3d(volume: np.ndarray) -> np.ndarray:
    """A view of ``volume`` with three axes: the first two kept, the rest flattened (slabs along the first)."""
    return volume.reshape(1, 1, -1) if volume.ndim < 3 else volume.reshape(volume.shape[0], volume.shape[1], -1)


def moments(estimate: np.ndarray, ground_truth: np.ndarray) -> Moments:
    """One streaming pass: moments, reference range and Σ(e − g)²; NaN/inf is an error."""
    est, gt = (as_3d(v) for v in check_pair(estimate, ground_truth))
    result = Moments()
    for z0, z1 in z_slabs(est.shape[0], est.shape[1] * est.shape[2]):
        e = np.asarray(est[z0:z1], dtype=np.float64)
        g = np.asarray(gt[z0:z1], dtype=np.float64)
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(g))):
            raise ValueError("estimate or ground_truth contains NaN or inf values")
        result.add(e, g)
    return result
