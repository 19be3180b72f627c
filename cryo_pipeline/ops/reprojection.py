"""Reprojection agreement: project a volume at held-out tilts and compare with the measured images.

For each held-out tilt θ the volume is projected with the project's projector
(:mod:`cryo_pipeline.ops.projector`, the same geometry as the reconstruction) and
compared with the image acquired at θ, which no method saw:

* **NCC**: Pearson correlation of the two images after removing each detector row's
  mean. A row's mean is the k_x' = 0 line of the image's spectrum, the same line
  (k_z = k_x = 0) at every tilt, so every working tilt measured it; without it the
  score holds only what the held-out tilt adds. Invariant to any affine rescaling of
  either image (a method's intensity scale does not matter).
* **FRC**: Fourier ring correlation of the two row-centred images, rings one Fourier
  pixel thick on the grid of the smaller image axis (as the 3D shells), and its 0.5
  crossing as a resolution (:func:`cryo_pipeline.ops.fsc.fsc_resolution_angstrom`).

The volume is assumed to hold everything the rays cross inside its box (an isolated
object, e.g. a needle or a particle); a slab whose content extends beyond the box's x
range lacks, at high tilt, the mass that entered the ray outside the box.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cryo_pipeline.ops.fsc import fsc_resolution_angstrom
from cryo_pipeline.ops.projector import project_3d


def _row_centred(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    return image - image.mean(axis=-1, keepdims=True)


def normalised_cross_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two ``(h, w)`` images after removing each row's mean.

    Returns NaN when either image is constant along every row.
    """
    a, b = _row_centred(a), _row_centred(b)
    if a.shape != b.shape:
        raise ValueError(f"images must have equal shapes, got {a.shape} and {b.shape}")
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denominator) if denominator > 0 else float("nan")


def ring_index_2d(shape_yx: tuple[int, int]) -> np.ndarray:
    """Integer ring index of every pixel of an unshifted 2D FFT (radius × min(shape), rounded)."""
    h, w = (int(n) for n in shape_yx)
    ky = np.fft.fftfreq(h).reshape(h, 1)
    kx = np.fft.fftfreq(w).reshape(1, w)
    return np.rint(np.sqrt(ky**2 + kx**2) * min(h, w)).astype(np.int64)


def fourier_ring_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """FRC of two row-centred ``(h, w)`` images, rings 0 … min(h, w)//2 (0 where a ring has no power)."""
    a, b = _row_centred(a), _row_centred(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"images must be 2D of equal shape, got {a.shape} and {b.shape}")
    n = min(a.shape) // 2 + 1
    rings = np.minimum(ring_index_2d(a.shape), n).ravel()
    fa, fb = np.fft.fft2(a).ravel(), np.fft.fft2(b).ravel()
    cross = np.bincount(rings, weights=(fa * np.conj(fb)).real, minlength=n + 1)[:n]
    pa = np.bincount(rings, weights=np.abs(fa) ** 2, minlength=n + 1)[:n]
    pb = np.bincount(rings, weights=np.abs(fb) ** 2, minlength=n + 1)[:n]
    floor = 1e-12 * max(float(pa.max()), float(pb.max()), np.finfo(float).tiny)
    ok = (pa > floor) & (pb > floor)
    return np.where(ok, cross / np.sqrt(np.where(ok, pa * pb, 1.0)), 0.0)


def reprojection_agreement(
    volume: np.ndarray,
    images: np.ndarray,
    angles_deg: Sequence[float],
    *,
    pixel_size_angstrom: float,
    frc_threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """Agreement of a volume's projections with measured images, one value per tilt.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(d, h, w)`` reconstruction; y is the tilt axis.
    images : numpy.ndarray
        ``(n_tilts, h, n_det)`` measured (held-out) images on the same pixel grid.
    angles_deg : sequence of float
        ``(n_tilts,)`` their tilt angles.
    pixel_size_angstrom : float
        Pixel size of the images (= voxel size of the volume).
    frc_threshold : float
        FRC level that defines the resolution (0.5 for a comparison with a measurement).

    Returns
    -------
    dict
        ``angle_deg``, ``ncc``, ``frc_resolution_angstrom`` (each ``(n_tilts,)``) and
        ``frc`` (``(n_tilts, min(h, n_det)//2 + 1)``).
    """
    images = np.asarray(images, dtype=np.float64)
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if images.ndim != 3 or images.shape[0] != angles.size:
        raise ValueError(f"images {images.shape} must be (n_tilts, h, n_det) with one angle each ({angles.size})")
    if images.shape[1] != np.shape(volume)[1]:
        raise ValueError(f"image height {images.shape[1]} does not match the volume's y size {np.shape(volume)[1]}")
    projections = project_3d(np.asarray(volume, dtype=np.float32), angles, detector_width_px=images.shape[2])
    box = min(images.shape[1:])
    ncc, frc, resolution = [], [], []
    for projected, measured in zip(projections, images, strict=True):
        curve = fourier_ring_correlation(projected, measured)
        ncc.append(normalised_cross_correlation(projected, measured))
        frc.append(curve)
        resolution.append(fsc_resolution_angstrom(
            curve, box_px=box, voxel_size_angstrom=pixel_size_angstrom, threshold=frc_threshold
        ))
    return {
        "angle_deg": angles,
        "ncc": np.asarray(ncc),
        "frc_resolution_angstrom": np.asarray(resolution),
        "frc": np.asarray(frc),
    }
