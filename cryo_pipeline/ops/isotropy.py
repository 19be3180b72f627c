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

from cryo_pipeline.ops.fourier_shells import half_spectrum, half_spectrum_frequencies, paired_columns, plane_shells


def spectral_bandwidths(volume: np.ndarray) -> dict[str, float]:
    """RMS spectral bandwidth (cycles/voxel) along z, y and x of a ``(d, h, w)`` volume.

    From the real FFT's half spectrum, summed z-plane by z-plane (each column that stands for
    itself and its ``−k`` partner counted twice), so a memory-mapped float32 volume costs one
    complex64 half spectrum and no float64 grids; DC is excluded, so the mean does not matter.

    Returns
    -------
    dict
        ``{"z": B_z, "y": B_y, "x": B_x}``; NaN when the volume has no power off DC.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (d, h, w), got shape {volume.shape}")
    spectrum = half_spectrum(volume)
    nyquist = min(volume.shape) // 2
    col_weight = np.where(paired_columns(volume.shape[2]), 2.0, 1.0)
    fz, fy, fx = half_spectrum_frequencies(volume.shape)
    total = along_z = along_y = along_x = 0.0
    for iz in range(volume.shape[0]):
        shells = plane_shells(fz[iz], fy, fx, volume.shape)
        plane = spectrum[iz]
        power = (plane.real * plane.real + plane.imag * plane.imag).astype(np.float64)
        power *= col_weight * ((shells >= 1) & (shells <= nyquist))
        plane_total = float(power.sum())
        total += plane_total
        along_z += fz[iz] ** 2 * plane_total
        along_y += float((power * fy**2).sum())
        along_x += float((power * fx**2).sum())
    if total <= 0:
        return {"z": float("nan"), "y": float("nan"), "x": float("nan")}
    return {"z": float(np.sqrt(along_z / total)), "y": float(np.sqrt(along_y / total)),
            "x": float(np.sqrt(along_x / total))}


def isotropy_z_x(volume: np.ndarray) -> float:
    """B_z / B_x of :func:`spectral_bandwidths`: 1 isotropic in the xz plane, < 1 blurred along z."""
    bandwidth = spectral_bandwidths(volume)
    return bandwidth["z"] / bandwidth["x"] if bandwidth["x"] > 0 else float("nan")
