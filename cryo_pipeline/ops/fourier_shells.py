"""Fourier-shell sums of one or two volumes from their half spectra, z-plane by z-plane.

The FSC family (:mod:`cryo_pipeline.ops.fsc`) needs, per shell of one Fourier voxel, the number
of voxels, Σ Re(A·B*), Σ|A|² and Σ|B|² over the whole spectrum and over its measured region.
:func:`shell_sums` gets them from ``rfftn`` half spectra (in the input's precision: float32 →
complex64) without any full-size index, mask or power array: shells and region weights are
built per z-plane, and each ``k_x`` column other than 0 (and w/2 for an even w) stands for
itself and its Hermitian partner. The sums equal those over the full ``fftn`` voxel by voxel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = ["ShellSums", "half_spectrum", "half_spectrum_frequencies", "paired_columns", "plane_shells", "shell_fsc",
           "shell_sums"]

_NO_POWER = 1e-12  # relative power below which a shell counts as empty of signal


def half_spectrum(volume: np.ndarray) -> np.ndarray:
    """``rfftn`` of a real volume in its own precision (float32 → complex64, else complex128)."""
    volume = np.asarray(volume)
    if volume.dtype != np.float32:
        volume = volume.astype(np.float64, copy=False)
    return scipy.fft.rfftn(volume, workers=_workers())


def paired_columns(width: int) -> np.ndarray:
    """``(width//2 + 1,)`` bool: half-spectrum columns that also stand for their ``−k_x`` partner.

    Every column but ``k_x = 0`` and, for an even width, Nyquist: sums over the full spectrum
    count these twice.
    """
    cols = np.arange(width // 2 + 1)
    return (cols > 0) & ~((width % 2 == 0) & (cols == width // 2))


def half_spectrum_frequencies(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``k_z`` ``(d,)``, ``k_y`` ``(h, 1)`` and ``k_x`` ``(1, w//2 + 1)`` of a half spectrum (cycles/voxel)."""
    d, h, w = shape
    return np.fft.fftfreq(d), np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]


def plane_shells(kz: float, ky: np.ndarray, kx: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Shell index of one z-plane of the half spectrum (as :func:`cryo_pipeline.ops.fourier.shell_index_3d`)."""
    return np.rint(np.sqrt(kz**2 + ky**2 + kx**2) * min(shape)).astype(np.int64)


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass
class ShellSums:
    """Per-shell sums over the whole spectrum and its measured part (the missing part = the difference).

    ``count``: Fourier voxels; ``cross``: Σ Re(A·B*); ``pa``, ``pb``: Σ|A|², Σ|B|² (float64,
    ``n_shells + 1`` bins: the last collects everything beyond Nyquist and is discarded).
    """

    n_shells: int
    total: dict[str, np.ndarray]
    measured: dict[str, np.ndarray]
    mean_pa: float
    mean_pb: float

    def region(self, name: str) -> dict[str, np.ndarray]:
        if name == "all":
            return self.total
        if name == "measured":
            return self.measured
        return {k: self.total[k] - self.measured[k] for k in self.total}


def shell_sums(fa: np.ndarray, fb: np.ndarray | None, shape: tuple[int, int, int],
                measured_plane: np.ndarray | None) -> ShellSums:
    """Accumulate the shell sums of one or two half spectra z-plane by z-plane.

    Parameters
    ----------
    fa, fb : `(d, h, w//2 + 1)` complex arrays
        :func:`half_spectrum` of the volumes (``fb`` may be None: only ``count`` and ``pa``).
    shape : (d, h, w)
        The volumes' shape.
    measured_plane : `(d, w)` bool array or None
        Measured (k_z, k_x) bins of the full spectrum (constant along k_y). A partner ``−k``
        of a half-spectrum voxel has the same power, cross power and shell, and is measured
        when the plane says so at ``(−k_z, −k_x)``.
    """
    d, h, w = shape
    n = min(shape) // 2 + 1
    wh = w // 2 + 1
    cols = np.arange(wh)
    double = paired_columns(w)
    col_weight = np.where(double, 2.0, 1.0)
    fz, fy, fx = half_spectrum_frequencies(shape)
    keys = ("count", "cross", "pa", "pb")
    total = {k: np.zeros(n + 1) for k in keys}
    measured = {k: np.zeros(n + 1) for k in keys}
    sum_pa = sum_pb = 0.0
    for iz in range(d):
        shells = np.minimum(plane_shells(fz[iz], fy, fx, shape), n).ravel()
        a = fa[iz]
        pa = (a.real * a.real + a.imag * a.imag).astype(np.float64)
        values = {"pa": pa}
        if fb is not None:
            b = fb[iz]
            values["pb"] = (b.real * b.real + b.imag * b.imag).astype(np.float64)
            values["cross"] = (a.real * b.real + a.imag * b.imag).astype(np.float64)
        weights = {"all": np.broadcast_to(col_weight, (h, wh))}
        if measured_plane is not None:
            own = measured_plane[iz, :wh]
            partner = measured_plane[(-iz) % d, (-cols) % w]
            weights["measured"] = np.broadcast_to(own + np.where(double, partner, 0.0), (h, wh))
        for region, weight in weights.items():
            out = total if region == "all" else measured
            out["count"] += np.bincount(shells, weights=weight.ravel(), minlength=n + 1)
            for key, value in values.items():
                out[key] += np.bincount(shells, weights=(value * weight).ravel(), minlength=n + 1)
        sum_pa += float(np.sum(pa * weights["all"]))
        if fb is not None:
            sum_pb += float(np.sum(values["pb"] * weights["all"]))
    size = float(d) * h * w
    return ShellSums(n, total, measured, sum_pa / size, sum_pb / size)


def shell_fsc(sums: ShellSums, region: str = "all") -> np.ndarray:
    """FSC per shell (optionally inside a region); 0 where a volume has no power."""
    r = sums.region(region)
    n = sums.n_shells
    cross, pa, pb, count = r["cross"][:n], r["pa"][:n], r["pb"][:n], r["count"][:n]
    ok = (pa > _NO_POWER * count * sums.mean_pa) & (pb > _NO_POWER * count * sums.mean_pb)
    return np.where(ok, cross / np.sqrt(np.where(ok, pa * pb, 1.0)), 0.0)
