"""Data consistency: put a reference's measured Fourier region back into a volume.

A single-axis tilt series (tilt axis y) measures, by the central-slice theorem, the same
region of every `(k_z, k_x)` plane whatever `k_y`: the planes of the acquired tilts
(within half a voxel: the measured region of the directional FSC,
:func:`cryo_pipeline.ops.fsc.measured_region_mask_3d`). Replacing a volume's spectrum
there by a reference's (the weighted back-projection of the same tilt series) therefore
works one `xz` plane at a time — a 2D FFT per y-row, equal to the 3D replacement and
independent of the other rows — so a slab of rows can be made consistent on its own, and
blending consistent slabs in y gives the consistent blend. What the volume adds (its fill
of the missing region, and of the gaps between the tilt planes) is kept; what was
measured is the data's again (CryoGEN's ``keep_measured``, for coordinate networks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cryo_pipeline.ops.fsc import measured_region_mask_3d

__all__ = ["keep_measured_region"]


def keep_measured_region(volume: np.ndarray, reference: np.ndarray, angles_deg: Sequence[float]) -> np.ndarray:
    """``volume`` with the spectrum of ``reference`` on the Fourier planes the tilts measured.

    Parameters
    ----------
    volume, reference : numpy.ndarray
        `(d, T, w)` real volumes (or slabs of rows) of equal shape, e.g. a network's fit and
        the WBP of the same rows.
    angles_deg : sequence of float
        The acquired tilt angles (tilt axis y).

    Returns
    -------
    numpy.ndarray
        `(d, T, w)` float32: ``F⁻¹[M·F(reference) + (1 − M)·F(volume)]`` per `xz` plane, ``M``
        the measured region.
    """
    volume = np.asarray(volume)
    reference = np.asarray(reference)
    if volume.ndim != 3 or volume.shape != reference.shape:
        raise ValueError(f"volume {volume.shape} and reference {reference.shape} must be equal (d, T, w) arrays")
    d, _, w = volume.shape
    mask = measured_region_mask_3d((d, 1, w), angles_deg)  # (d, 1, w): the same for every row
    difference = np.fft.fft2(reference.astype(np.float64) - volume.astype(np.float64), axes=(0, 2))
    correction = np.real(np.fft.ifft2(difference * mask, axes=(0, 2)))
    return (volume.astype(np.float64) + correction).astype(np.float32)
