"""Fourier cropping (anti-aliased binning) and Fourier padding of real volumes.

A real ``(d, h, w)`` volume is resampled to ``(d', h', w')`` by keeping the centred
part of its spectrum (downsampling: an ideal low-pass at the new Nyquist, no
aliasing) or zero-padding it (upsampling: band-limited interpolation). Per axis of
input size ``n`` and output size ``m`` (frequencies in integer bins about DC):

* ``m < n``: keep bins ``|k| < m/2``; if ``m`` is even, the output Nyquist bin is the
  **sum** of the input bins ``+m/2`` and ``−m/2`` (both alias to it when sampling).
* ``m > n``: copy every input bin; if ``n`` is even, its Nyquist bin ``−n/2`` is
  **split** in halves between output bins ``+n/2`` and ``−n/2``.

Both steps keep Hermitian symmetry, so a real input gives a real output, and
downsampling undoes upsampling exactly (down ∘ up = identity), which makes
up ∘ down a projection. The spectrum is scaled by ``prod(m) / prod(n)`` so the mean
intensity is preserved and a constant volume stays that constant. The result equals
``scipy.signal.resample`` applied along each axis in turn, but uses one real-to-
complex 3D FFT.

Voxel size: after resampling axis ``i`` from ``n_in`` to ``n_out`` voxels the caller
must multiply that axis's voxel size by ``n_in / n_out``
(:func:`binned_voxel_size_angstrom`); these kernels never see voxel sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.fft


def _hermitian_partner(plane: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``plane[-k]`` (indices modulo size) along ``axes`` of an unshifted spectrum."""
    out = np.flip(plane, axis=axes)
    return np.roll(out, 1, axis=axes)


def _resize_full_axis(spec: np.ndarray, axis: int, m: int) -> np.ndarray:
    """Crop/pad a full (two-sided, unshifted) spectrum axis from ``n`` to ``m`` bins."""
    n = spec.shape[axis]
    if m == n:
        return spec
    small = min(n, m)
    n_pos = (small + 1) // 2  # bins 0 .. ceil(small/2) - 1
    n_neg = small // 2  # bins -floor(small/2) .. -1
    shape = list(spec.shape)
    shape[axis] = m
    out = np.zeros(shape, dtype=spec.dtype)

    def sl(a: int, b: int | None) -> tuple[slice, ...]:
        idx = [slice(None)] * spec.ndim
        idx[axis] = slice(a, b)
        return tuple(idx)

    out[sl(0, n_pos)] = spec[sl(0, n_pos)]
    if n_neg:
        out[sl(m - n_neg, m)] = spec[sl(n - n_neg, n)]
    if small % 2 == 0:
        half = small // 2
        if m < n:  # merge: output bin -m/2 (stored at m - half) gets input bin +m/2 too
            out[sl(m - half, m - half + 1)] += spec[sl(half, half + 1)]
        else:  # split: input bin -n/2 (copied to m - half) is halved and mirrored to +n/2
            out[sl(m - half, m - half + 1)] *= 0.5
            out[sl(half, half + 1)] = out[sl(m - half, m - half + 1)]
    return out


def _resize_half_axis(spec: np.ndarray, n: int, m: int) -> np.ndarray:
    """Crop/pad the last (rfft, one-sided) axis of a Hermitian spectrum from ``n`` to ``m``.

    The other axes must already be at their final sizes (their Hermitian partner
    ``−k`` is taken on the current grid).
    """
    if m == n:
        return spec
    out = np.zeros(spec.shape[:-1] + (m // 2 + 1,), dtype=spec.dtype)
    keep = min(n, m) // 2 + 1
    out[..., :keep] = spec[..., :keep]
    if m < n and m % 2 == 0:
        # bin +m/2 stands for both +m/2 and −m/2; the −m/2 bin at (k0, k1) is the
        # conjugate of the stored +m/2 bin at (−k0, −k1)
        nyq = spec[..., m // 2]
        out[..., m // 2] = nyq + np.conj(_hermitian_partner(nyq, axes=tuple(range(nyq.ndim))))
    elif m > n and n % 2 == 0:
        out[..., n // 2] *= 0.5  # the other half goes to −n/2, implied by symmetry
    return out


def _check_shape(shape_zyx_out: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(shape_zyx_out)
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape):
        raise ValueError(f"shape_zyx_out must be three integers (d, h, w), got {shape_zyx_out!r}")
    if min(shape) < 1:
        raise ValueError(f"shape_zyx_out {shape} has a dimension < 1")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def fourier_rescale_3d(
    volume: np.ndarray,
    *,
    shape_zyx_out: Sequence[int],
    workers: int | None = None,
) -> np.ndarray:
    """Resample a real volume to a new shape by cropping or zero-padding its spectrum.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(d, h, w)`` real volume. float64 input is transformed in double precision,
        anything else in single precision.
    shape_zyx_out : sequence of int
        Output shape ``(d', h', w')``; each axis may shrink, grow or stay.
    workers : int, optional
        Threads for ``scipy.fft`` (default: scipy's default, one).

    Returns
    -------
    numpy.ndarray
        ``(d', h', w')`` float32 with the same mean as ``volume``. Each axis is an
        independent band-limited resampling (see the module docstring).
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"volume must be 3D (d, h, w), got shape {vol.shape}")
    if np.iscomplexobj(vol):
        raise ValueError("volume must be real, got a complex array")
    shape_out = _check_shape(shape_zyx_out)
    if shape_out == vol.shape:
        return vol.astype(np.float32, copy=True)
    work_dtype = np.float64 if vol.dtype == np.float64 else np.float32
    # The mean is handled outside the FFT (in float64): the DC bin would carry it
    # unchanged anyway, and a constant volume then comes back bit-exact.
    mean = float(np.mean(vol, dtype=np.float64))
    centred = vol.astype(work_dtype, copy=True)
    centred -= mean
    spec = scipy.fft.rfftn(centred, workers=workers, overwrite_x=True)
    spec = _resize_full_axis(spec, 0, shape_out[0])
    spec = _resize_full_axis(spec, 1, shape_out[1])
    spec = _resize_half_axis(spec, vol.shape[2], shape_out[2])
    spec *= math.prod(shape_out) / math.prod(vol.shape)
    out = scipy.fft.irfftn(spec, s=shape_out, workers=workers, overwrite_x=True)
    out += work_dtype(mean)
    return out.astype(np.float32, copy=False)


def binned_shape_3d(shape_zyx: Sequence[int], *, factor: float) -> tuple[int, int, int]:
    """Output shape of :func:`bin_volume_3d`: ``n / factor`` per axis, halves rounded up.

    Raises ``ValueError`` naming the factor when it is not a finite number > 0 or when
    an output dimension would be < 1.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating)):
        raise TypeError(f"binning factor must be a number, got {factor!r}")
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"binning factor must be a finite number > 0, got {factor}")
    shape = tuple(int(math.floor(int(n) / factor + 0.5 + 1e-9)) for n in shape_zyx)
    if min(shape) < 1:
        raise ValueError(
            f"binning factor {factor} is too large for shape {tuple(shape_zyx)}: "
            f"it gives output shape {shape} with a dimension < 1"
        )
    return shape  # type: ignore[return-value]


def bin_volume_3d(volume: np.ndarray, *, factor: float, workers: int | None = None) -> np.ndarray:
    """Bin (or, for ``factor < 1``, upsample) a volume by Fourier cropping.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(d, h, w)`` real volume.
    factor : float
        Binning factor > 0, possibly fractional (e.g. 1.5). The output shape is
        ``n / factor`` per axis rounded to the nearest integer (halves up), see
        :func:`binned_shape_3d`; ``factor == 1`` returns a float32 copy.
    workers : int, optional
        Threads for ``scipy.fft``.

    Returns
    -------
    numpy.ndarray
        ``(d', h', w')`` float32, anti-aliased, mean preserved. The caller multiplies
        the voxel size of each axis by ``n_in / n_out`` (:func:`binned_voxel_size_angstrom`),
        which equals ``factor`` only when ``n / factor`` is an integer.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"volume must be 3D (d, h, w), got shape {vol.shape}")
    shape_out = binned_shape_3d(vol.shape, factor=factor)
    return fourier_rescale_3d(vol, shape_zyx_out=shape_out, workers=workers)


def binned_voxel_size_angstrom(
    voxel_size_angstrom: float | Sequence[float],
    n_in: int | Sequence[int],
    n_out: int | Sequence[int],
) -> float | tuple[float, ...]:
    """Voxel size after resampling ``n_in`` voxels to ``n_out``: ``size · n_in / n_out``.

    Parameters
    ----------
    voxel_size_angstrom : float or sequence of float
        Input voxel size, one value or one per axis (zyx).
    n_in, n_out : int or sequence of int
        Input and output sizes, one value or one per axis (zyx).

    Returns
    -------
    float or tuple of float
        A float when every argument is a scalar, else one value per axis.
    """
    size = np.asarray(voxel_size_angstrom, dtype=np.float64)
    n_in_arr = np.asarray(n_in, dtype=np.float64)
    n_out_arr = np.asarray(n_out, dtype=np.float64)
    if np.any(size <= 0) or np.any(n_in_arr < 1) or np.any(n_out_arr < 1):
        raise ValueError(
            f"need voxel size > 0 and sizes >= 1, got voxel_size_angstrom={voxel_size_angstrom}, "
            f"n_in={n_in}, n_out={n_out}"
        )
    result = size * n_in_arr / n_out_arr
    if result.ndim == 0:
        return float(result)
    return tuple(float(v) for v in result)
