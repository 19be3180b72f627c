"""Fourier-space grids shared by the wedge, metric and binning kernels.

Frequencies are in cycles per voxel (``numpy.fft.fftfreq`` convention) and arrays
are unshifted (DC at index 0) unless a function says otherwise.
"""

from __future__ import annotations

import numpy as np


def fftfreq_grid_3d(shape_zyx: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable frequency coordinates of a full (not rfft) 3D FFT.

    Parameters
    ----------
    shape_zyx : tuple of int
        Volume shape ``(d, h, w)``.

    Returns
    -------
    kz, ky, kx : numpy.ndarray
        Shapes ``(d, 1, 1)``, ``(1, h, 1)``, ``(1, 1, w)``; cycles per voxel in [-0.5, 0.5).
    """
    d, h, w = (int(n) for n in shape_zyx)
    kz = np.fft.fftfreq(d).reshape(d, 1, 1)
    ky = np.fft.fftfreq(h).reshape(1, h, 1)
    kx = np.fft.fftfreq(w).reshape(1, 1, w)
    return kz, ky, kx


def shell_index_3d(shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """Integer Fourier-shell index of every voxel of an unshifted 3D FFT.

    Shells are one Fourier voxel thick, measured on the grid of the *smallest* axis
    (radius in cycles/voxel times ``min(shape)``), rounded to the nearest integer.

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` int64; shell 0 is DC, shell ``min(shape)//2`` is Nyquist.
    """
    kz, ky, kx = fftfreq_grid_3d(shape_zyx)
    radius = np.sqrt(kz**2 + ky**2 + kx**2) * min(shape_zyx)
    return np.rint(radius).astype(np.int64)
