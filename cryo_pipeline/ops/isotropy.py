"""A no-reference isotropy measure: spectral bandwidth along z (beam) relative to x.

The missing wedge removes high k_z frequencies, so a tomogram is blurred along z
(the beam) more than along x or y. The RMS spectral bandwidth along a unit direction
``u``::

    B_u = sqrt( Σ_k (k·u)² |F(k)|²  /  Σ_k |F(k)|² )

over the Fourier voxels with 1 ≤ shell ≤ Nyquist (DC and the corners beyond the
Nyquist sphere excluded, so the grid's own anisotropy does not count), is the
curvature of the autocorrelation peak along ``u`` (Wiener–Khinchin): a blur by σ
along an axis divides that axis's bandwidth of a white signal by the same amount.
:func:`isotropy_z_x` = B_z / B_x compares the xz plane's two directions: 1 for an
isotropic volume; below 1 when z is blurred by the wedge. An isotropic Gaussian blob
gives 1; a Gaussian stretched twice along z gives 0.5. Both axes are measured in
cycles per voxel, so the voxels must be cubic (every volume in this project is).
"""

from __future__ import annotations

import numpy as np

from cryo_pipeline.ops.fourier import fftfreq_grid_3d, shell_index_3d


def spectral_bandwidths(volume: np.ndarray) -> dict[str, float]:
    """RMS spectral bandwidth (cycles/voxel) along z, y and x of a ``(d, h, w)`` volume.

    Returns
    -------
    dict
        ``{"z": B_z, "y": B_y, "x": B_x}``; NaN when the volume has no power off DC.
    """
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (d, h, w), got shape {volume.shape}")
    spectrum = np.fft.fftn(volume - volume.mean())
    power = spectrum.real**2 + spectrum.imag**2
    shells = shell_index_3d(volume.shape)
    inside = (shells >= 1) & (shells <= min(volume.shape) // 2)
    power = np.where(inside, power, 0.0)
    total = float(power.sum())
    if total <= 0:
        return {"z": float("nan"), "y": float("nan"), "x": float("nan")}
    kz, ky, kx = fftfreq_grid_3d(volume.shape)
    return {
        "z": float(np.sqrt(np.sum(power * kz**2) / total)),
        "y": float(np.sqrt(np.sum(power * ky**2) / total)),
        "x": float(np.sqrt(np.sum(power * kx**2) / total)),
    }


def isotropy_z_x(volume: np.ndarray) -> float:
    """B_z / B_x of :func:`spectral_bandwidths`: 1 isotropic in the xz plane, < 1 blurred along z."""
    bandwidth = spectral_bandwidths(volume)
    return bandwidth["z"] / bandwidth["x"] if bandwidth["x"] > 0 else float("nan")
