"""The missing wedge: which Fourier directions a tilt range measures.

Convention (DESIGN.md §1): at tilt θ the ray direction in the (z, x) plane is
(cos θ, sin θ) and the detector coordinate is x' = x·cos θ − z·sin θ. By the
central-slice theorem a projection at θ measures the Fourier plane spanned by k_y
and the (k_z, k_x) direction (−sin θ, cos θ). A Fourier point therefore belongs to
tilt angle θ(k) = atan(−k_z / k_x) ∈ (−90°, 90°], and it is measured when
``tilt_min_deg ≤ θ(k) ≤ tilt_max_deg``. The mask is constant along k_y and the DC
term is always measured. This is the one function that builds the wedge; every
other module calls it.
"""

from __future__ import annotations

import numpy as np

from cryo_pipeline.ops.fourier import fftfreq_grid_3d


def check_tilt_range(tilt_min_deg: float, tilt_max_deg: float) -> None:
    """Raise ``ValueError`` unless −90 ≤ tilt_min < tilt_max ≤ 90 (degrees)."""
    if not (-90.0 <= tilt_min_deg < tilt_max_deg <= 90.0):
        raise ValueError(
            f"tilt range [{tilt_min_deg}, {tilt_max_deg}] deg is invalid: need "
            "-90 <= tilt_min_deg < tilt_max_deg <= 90"
        )


def fourier_tilt_angle_deg(kz: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Tilt angle θ(k) in degrees, in (−90, 90], whose projection measures (k_z, k_x).

    ``kx == 0`` maps to 90 (the k_z axis, measured only by a 90° tilt).
    """
    kz, kx = np.broadcast_arrays(np.asarray(kz, dtype=np.float64), np.asarray(kx, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.degrees(np.arctan(-kz / kx))
    theta = np.where(kx == 0, 90.0, theta)
    return np.where(theta <= -90.0, 90.0, theta)


def missing_wedge_mask_3d(
    shape_zyx: tuple[int, int, int],
    *,
    tilt_min_deg: float,
    tilt_max_deg: float,
    soft_edge_deg: float = 0.0,
    fftshift: bool = False,
) -> np.ndarray:
    """Measured-region mask of a single-axis (about y) tilt series.

    Parameters
    ----------
    shape_zyx : tuple of int
        Volume shape ``(d, h, w)``.
    tilt_min_deg, tilt_max_deg : float
        Tilt range; asymmetric ranges are allowed.
    soft_edge_deg : float
        Width of a raised-cosine roll-off *outside* the range (0 = hard edge).
    fftshift : bool
        Return the mask with DC at the centre instead of index 0.

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` float32 in [0, 1]; 1 = measured, 0 = missing.
    """
    check_tilt_range(tilt_min_deg, tilt_max_deg)
    if soft_edge_deg < 0:
        raise ValueError(f"soft_edge_deg ({soft_edge_deg}) must be >= 0")
    kz, _, kx = fftfreq_grid_3d(shape_zyx)
    theta = fourier_tilt_angle_deg(kz, kx)[:, 0, :]  # (d, w)
    # angular distance outside the range, on the circle of period 180 deg
    below = np.mod(tilt_min_deg - theta, 180.0)
    above = np.mod(theta - tilt_max_deg, 180.0)
    inside = (theta >= tilt_min_deg) & (theta <= tilt_max_deg)
    outside_by = np.minimum(below, above)
    if soft_edge_deg > 0:
        ramp = 0.5 * (1.0 + np.cos(np.pi * np.clip(outside_by / soft_edge_deg, 0.0, 1.0)))
        plane = np.where(inside, 1.0, ramp)
    else:
        plane = inside.astype(np.float64)
    plane[0, 0] = 1.0  # DC
    # Even sizes: a Nyquist-plane voxel is its own k_x (or k_z) partner, so θ(k) and θ(−k)
    # can differ there. Keep such a voxel only if its mirror is kept too; then the mask is
    # Hermitian-symmetric and a real volume stays real (no leakage into the wedge).
    mirror = np.roll(plane[::-1, ::-1], shift=(1, 1), axis=(0, 1))
    plane = np.minimum(plane, mirror)
    mask = np.broadcast_to(plane[:, None, :], tuple(shape_zyx)).astype(np.float32)
    return np.fft.fftshift(mask) if fftshift else mask


def apply_fourier_mask_3d(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Multiply a volume's spectrum by an unshifted mask and return the real part.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(d, h, w)`` real volume.
    mask : numpy.ndarray
        ``(d, h, w)`` unshifted Fourier mask (e.g. :func:`missing_wedge_mask_3d`).

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` float32.
    """
    if volume.shape != mask.shape:
        raise ValueError(f"volume shape {volume.shape} and mask shape {mask.shape} differ")
    spectrum = np.fft.fftn(volume.astype(np.float32, copy=False))
    return np.real(np.fft.ifftn(spectrum * mask)).astype(np.float32)


def apply_missing_wedge_3d(volume: np.ndarray, *, tilt_min_deg: float, tilt_max_deg: float) -> np.ndarray:
    """Zero the missing wedge of a volume (the CryoGEN paper's ``fourier`` corruption).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(d, h, w)`` real volume.

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` float32 with only the measured Fourier region kept.
    """
    mask = missing_wedge_mask_3d(volume.shape, tilt_min_deg=tilt_min_deg, tilt_max_deg=tilt_max_deg)
    return apply_fourier_mask_3d(volume, mask)
