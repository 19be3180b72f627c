"""Radial (isotropic) Fourier filters applied to a whole volume or, memory-bounded, in chunks.

A radial filter is a 1D array from DC to Nyquist sampled on ``linspace(0, 1, n)``;
:func:`radial_filter_3d` spreads it over a 3D FFT grid with IsoNet's normalised radius.
:func:`filter_volume` applies it with one FFT; :func:`filter_volume_chunked` gives the
same result with memory bounded by one chunk plus a small low-frequency spectrum, for
tomograms that are memory maps (see its Notes). Both can rescale the output to the
input's mean and standard deviation, once and globally (never per chunk).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft

from cryo_pipeline.ops.blending import BlendAccumulator, as_zyx, release_pages, slab_ranges

__all__ = ["LOW_BAND_NYQUIST", "filter_volume", "filter_volume_chunked", "radial_filter_3d"]

#: Default band split (r1, r2), fractions of Nyquist, of :func:`filter_volume_chunked`.
LOW_BAND_NYQUIST = (0.1, 0.3)


def radial_filter_3d(shape_zyx: Sequence[int], filter_1d: np.ndarray, *, rfft: bool = False) -> np.ndarray:
    """Sample a radial 1D filter on an unshifted 3D FFT grid (DC at index 0).

    The radius is IsoNet's: per axis the integer frequency f (``fftfreq(n)·n``, i.e.
    ``−⌊n/2⌋ … ⌈n/2⌉−1`` ifftshifted) divided by ``max(1, ⌊n/2⌋)``, so ±1 at that
    axis's Nyquist; r = sqrt(Σ (f/⌊n/2⌋)²) clipped at 1; the filter is linearly
    interpolated at r on ``linspace(0, 1, len(filter_1d))``.

    Parameters
    ----------
    shape_zyx : (d, h, w)
        Real-space shape.
    filter_1d : `(n_points,)` array
        Filter from DC (index 0) to Nyquist (last index).
    rfft : bool
        Return only the half spectrum of ``scipy.fft.rfftn`` (last axis ``w//2 + 1``);
        the filter is even in every axis, so this gives the same result with half the memory.

    Returns
    -------
    numpy.ndarray
        `(d, h, w)` (or `(d, h, w//2 + 1)`) float32.
    """
    d, h, w = as_zyx(shape_zyx, "shape_zyx")
    filt = np.asarray(filter_1d, dtype=np.float64)
    if filt.ndim != 1 or filt.size < 2:
        raise ValueError(f"filter_1d must be a 1D array of >= 2 samples, got shape {filt.shape}")
    grid = np.linspace(0.0, 1.0, filt.size)

    def axis(n: int, half: bool = False) -> np.ndarray:
        f = (np.fft.rfftfreq(n, d=1.0 / n) if half else np.fft.fftfreq(n, d=1.0 / n)) / max(1, n // 2)
        return f * f

    fz, fy, fx = axis(d), axis(h), axis(w, half=rfft)
    out = np.empty((d, h, fx.size), dtype=np.float32)
    for i in range(d):  # plane by plane: no full-size float64 temporaries
        r = np.minimum(1.0, np.sqrt(fz[i] + fy[:, None] + fx[None, :]))
        out[i] = np.interp(r, grid, filt)
    return out


def _filter_box(box: np.ndarray, spectrum_filter: np.ndarray, workers: int | None, *, scratch: bool) -> np.ndarray:
    """irfftn(rfftn(box) · filter); ``scratch``: ``box`` is ours and may be overwritten."""
    spec = scipy.fft.rfftn(np.asarray(box, dtype=np.float32), workers=workers, overwrite_x=scratch)
    spec *= spectrum_filter
    return scipy.fft.irfftn(spec, s=box.shape, workers=workers, overwrite_x=True)


def _moments(array: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a (possibly memory-mapped) volume, slab by slab."""
    total = total_sq = 0.0
    for z0, z1 in slab_ranges(array.shape[0], array.shape[1] * array.shape[2]):
        slab = np.asarray(array[z0:z1], dtype=np.float32)
        total += float(slab.sum(dtype=np.float64))
        total_sq += float(np.square(slab, dtype=np.float64).sum())
        release_pages(array)
    return _mean_std(total, total_sq, array.size)


def _mean_std(total: float, total_sq: float, n: int) -> tuple[float, float]:
    mean = total / n
    std = float(np.sqrt(max(0.0, total_sq / n - mean * mean)))
    if not (np.isfinite(mean) and np.isfinite(std)):
        raise ValueError("the volume contains NaN or Inf voxels; filtering needs finite values")
    return mean, std


def _rescale(array: np.ndarray, *, mean_from: float, std_from: float, mean_to: float, std_to: float) -> None:
    """In place, slab by slab: (x − mean_from) · std_to/std_from + mean_to."""
    scale = np.float32(std_to / std_from if std_from > 0 else 0.0)
    for z0, z1 in slab_ranges(array.shape[0], array.shape[1] * array.shape[2]):
        slab = array[z0:z1]
        slab -= np.float32(mean_from)
        slab *= scale
        slab += np.float32(mean_to)
        release_pages(array)


def filter_volume(
    volume: np.ndarray, filter_1d: np.ndarray, *, match_mean_std: bool = False, workers: int | None = None
) -> np.ndarray:
    """real(ifftn(fftn(v) · F(r))) in one FFT (computed as ``irfftn(rfftn(v) · F)``).

    Parameters
    ----------
    volume : `(d, h, w)` array
    filter_1d : `(n_points,)` array
        Radial filter (:func:`radial_filter_3d`).
    match_mean_std : bool
        Rescale the output to the input's mean and standard deviation.
    workers : int, optional
        Threads for ``scipy.fft``.

    Returns
    -------
    numpy.ndarray
        `(d, h, w)` float32.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (d, h, w), got shape {volume.shape}")
    mean_in, std_in = _moments(volume)
    out = _filter_box(volume, radial_filter_3d(volume.shape, filter_1d, rfft=True), workers, scratch=False)
    out = out.astype(np.float32, copy=False)
    if match_mean_std:
        mean_out, std_out = _moments(out)
        _rescale(out, mean_from=mean_out, std_from=std_out, mean_to=mean_in, std_to=std_in)
    return out


def _wrapped_box(volume: np.ndarray, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
    """``volume[lo:hi]`` with periodic (wrap-around) indexing, read as contiguous runs."""
    runs = []
    for a, b, n in zip(lo, hi, volume.shape, strict=True):
        axis_runs, pos = [], a
        while pos < b:
            start = pos % n
            length = min(b - pos, n - start)
            axis_runs.append((slice(start, start + length), slice(pos - a, pos - a + length)))
            pos += length
        runs.append(axis_runs)
    box = np.empty(tuple(b - a for a, b in zip(lo, hi, strict=True)), dtype=np.float32)
    for sz, dz in runs[0]:
        for z_src, z_dst in zip(range(sz.start, sz.stop), range(dz.start, dz.stop), strict=True):
            for sy, dy in runs[1]:
                for sx, dx in runs[2]:
                    box[z_dst, dy, dx] = volume[z_src, sy, sx]
            release_pages(volume)  # plane by plane: page fault-around would pin whole planes
    return box


class _LowBand:
    """The exact low-frequency part of a radial filter's result, built slice by slice.

    The whole volume's DFT coefficients with |f_a| <= K_a = ⌊cutoff·max(1, ⌊n_a/2⌋)⌋ on
    every axis (a box holding every frequency with r < cutoff) are accumulated from
    per-slice ``rfft2``s and a short z-DFT. Multiplied by the filter at the whole grid's
    r, they give that band of :func:`filter_volume`'s result exactly; :meth:`slab`
    evaluates it slice by slice with ``irfft2``. Memory: the cropped spectrum only.
    """

    def __init__(self, shape: tuple[int, int, int], filter_1d: np.ndarray, cutoff: float) -> None:
        nz, ny, nx = self.shape = shape
        kz, ky, kx = (min((n - 1) // 2, int(np.floor(cutoff * max(1, n // 2)))) for n in shape)
        self.rows = np.r_[0 : ky + 1, ny - ky : ny]
        self.cols = np.arange(kx + 1)
        fz = np.arange(-kz, kz + 1)
        self.phase = -2j * np.pi * np.outer(fz, np.arange(nz)) / nz  # (2kz + 1, nz)
        fy = np.where(self.rows > ny // 2, self.rows - ny, self.rows)
        r2 = ((fz[:, None, None] / max(1, nz // 2)) ** 2 + (fy[None, :, None] / max(1, ny // 2)) ** 2
              + (self.cols[None, None, :] / max(1, nx // 2)) ** 2)
        self.filter = np.interp(np.minimum(1.0, np.sqrt(r2)), np.linspace(0.0, 1.0, filter_1d.size), filter_1d)
        self.spectrum = np.zeros(self.filter.shape, dtype=np.complex128)
        self.filtered = False

    def add_slab(self, z0: int, slab: np.ndarray) -> None:
        """Accumulate the contribution of slices ``z0 … z0 + len(slab)`` (float32 `(k, h, w)`)."""
        if self.filtered:
            raise RuntimeError("_LowBand: add_slab after slab(); the spectrum is already filtered")
        crops = np.stack([scipy.fft.rfft2(s)[np.ix_(self.rows, self.cols)] for s in slab])
        self.spectrum += np.tensordot(np.exp(self.phase[:, z0 : z0 + len(slab)]), crops, axes=(1, 0))

    def slab(self, z0: int, z1: int) -> np.ndarray:
        """The filtered band on slices ``z0 … z1``: `(z1 − z0, h, w)` float32."""
        if not self.filtered:  # once every slice has been added
            self.spectrum *= self.filter
            self.filtered = True
        nz, ny, nx = self.shape
        planes = np.tensordot(np.exp(-self.phase[:, z0:z1].T) / nz, self.spectrum, axes=(1, 0))
        out = np.empty((z1 - z0, ny, nx), dtype=np.float32)
        full = np.zeros((ny, nx // 2 + 1), dtype=np.complex128)
        for i, plane in enumerate(planes):
            full[np.ix_(self.rows, self.cols)] = plane
            out[i] = scipy.fft.irfft2(full, s=(ny, nx))
        return out


def _even_fast_len(n: int) -> int:
    """Smallest even length >= n that ``scipy.fft`` transforms fast (5-smooth)."""
    n = scipy.fft.next_fast_len(int(n), real=True)
    while n % 2:
        n = scipy.fft.next_fast_len(n + 1, real=True)
    return n


def _band_split(filter_1d: np.ndarray, bands: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``(F·L, F·(1 − L))``, L = 1 below r1, cos² down to 0 at r2 (fractions of Nyquist)."""
    r1, r2 = bands
    if not 0.0 <= r1 < r2 < 1.0:
        raise ValueError(f"low_band_nyquist must be (r1, r2) with 0 <= r1 < r2 < 1, got {bands}")
    x = np.linspace(0.0, 1.0, filter_1d.size)
    low = np.cos(0.5 * np.pi * np.clip((x - r1) / (r2 - r1), 0.0, 1.0)) ** 2
    return filter_1d * low, filter_1d * (1.0 - low)


def filter_volume_chunked(
    volume: np.ndarray,
    filter_1d: np.ndarray,
    *,
    chunk_px: int | Sequence[int],
    overlap_px: int | Sequence[int],
    halo_px: int | Sequence[int],
    out: np.ndarray | None = None,
    match_mean_std: bool = False,
    low_band_nyquist: tuple[float, float] | None = LOW_BAND_NYQUIST,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """:func:`filter_volume` in overlapping, blended chunks, with bounded memory.

    Parameters
    ----------
    volume : `(d, h, w)` array or read-only ``np.memmap``
        Any real dtype.
    filter_1d : `(n_points,)` array
        Radial filter.
    chunk_px, overlap_px, halo_px : int or (z, y, x)
        Chunk edge (clipped to the volume), overlap of neighbouring chunks, and the
        context filtered around each chunk and then discarded.
    out : `(d, h, w)` float32 array or writable ``np.memmap``, optional
        Destination (overwritten); a new array if None.
    match_mean_std : bool
        Rescale the output to the input's mean and standard deviation (globally).
    low_band_nyquist : (r1, r2) or None
        Band split, fractions of Nyquist; None = chunks only (see Notes).
    workers : int, optional
        Threads for ``scipy.fft``.
    progress : callable, optional
        ``progress(done, total)`` after every chunk.

    Returns
    -------
    numpy.ndarray
        ``out``, `(d, h, w)` float32.

    Notes
    -----
    Each chunk (a tile of :func:`~cryo_pipeline.ops.blending.tile_origins_3d`) is
    filtered with at least ``halo_px`` of context on every side (the padded box is rounded
    up to a fast FFT length), read with wrap-around indexing
    so the volume's borders see what the one-FFT result sees (a periodic volume); its
    filter is :func:`radial_filter_3d` at the padded shape (the same response per
    fraction of Nyquist). The core is blended with the shared window
    (:class:`~cryo_pipeline.ops.blending.BlendAccumulator`). An axis that one chunk
    covers gets no halo and is exact.

    A halo only helps as far as the filter's kernel reaches, and a filter with structure
    at very low frequencies reaches far (IsoNet's high-pass at 0.02 Nyquist: ~100
    voxels). So by default the filter is split with a cos² cross-over between r1 and r2:
    the part below r2 is applied exactly to the whole volume's low-frequency Fourier
    coefficients (:class:`_LowBand`, built during the input pass), and only the rest,
    whose kernel is short, goes through the chunks. Passes: input (statistics + low
    band), chunks, finalize, add low band (+ statistics), rescale; memory maps have
    their pages released as they go (:func:`~cryo_pipeline.ops.blending.release_pages`).
    """
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (d, h, w), got shape {volume.shape}")
    shape = tuple(int(n) for n in volume.shape)
    chunk, overlap, halo = as_zyx(chunk_px, "chunk_px"), as_zyx(overlap_px, "overlap_px"), as_zyx(halo_px, "halo_px")
    if min(chunk) < 1 or min(overlap) < 0 or min(halo) < 0:
        raise ValueError(f"need chunk_px >= 1, overlap_px >= 0, halo_px >= 0; got {chunk}, {overlap}, {halo}")
    tile = tuple(min(c, n) for c, n in zip(chunk, shape, strict=True))
    if any(o >= t for o, t, n in zip(overlap, tile, shape, strict=True) if t < n):
        raise ValueError(f"overlap_px {overlap} must be smaller than chunk_px {chunk}")
    overlap = tuple(min(o, t - 1) for o, t in zip(overlap, tile, strict=True))
    # An axis covered by one chunk needs no halo; elsewhere the padded box is rounded up to an
    # even fast FFT length (odd lengths would shift IsoNet's radius r = f/⌊n/2⌋ by n/(n−1)),
    # the extra context split between the two sides.
    padded = tuple(t if t == n else _even_fast_len(t + 2 * h) for h, t, n in zip(halo, tile, shape, strict=True))
    halo = tuple((p - t) // 2 for p, t in zip(padded, tile, strict=True))
    filter_1d = np.asarray(filter_1d, dtype=np.float64)
    low_band = None
    if low_band_nyquist is not None:
        filter_low, filter_1d = _band_split(filter_1d, low_band_nyquist)
        low_band = _LowBand(shape, filter_low, low_band_nyquist[1])
    slabs = slab_ranges(shape[0], shape[1] * shape[2])

    total = total_sq = 0.0
    for z0, z1 in slabs:  # input pass: statistics and the low band's spectrum
        slab = np.asarray(volume[z0:z1], dtype=np.float32)
        total += float(slab.sum(dtype=np.float64))
        total_sq += float(np.square(slab, dtype=np.float64).sum())
        if low_band is not None:
            low_band.add_slab(z0, slab)
        release_pages(volume)
    mean_in, std_in = _mean_std(total, total_sq, volume.size)

    acc = BlendAccumulator(shape, tile_zyx=tile, overlap_zyx=overlap, out=out)
    spectrum_filter = radial_filter_3d(padded, filter_1d, rfft=True)
    core = tuple(slice(h, h + t) for h, t in zip(halo, tile, strict=True))
    for done, origin in enumerate(acc.origins, start=1):
        lo = [int(o) - h for o, h in zip(origin, halo, strict=True)]
        box = _wrapped_box(volume, lo, [a + p for a, p in zip(lo, padded, strict=True)])
        acc.add(_filter_box(box, spectrum_filter, workers, scratch=True)[core], origin)
        if progress is not None:
            progress(done, acc.n_tiles)
    result = acc.finalize()

    total = total_sq = 0.0
    for z0, z1 in slabs:  # add the low band; output statistics
        slab = result[z0:z1]
        if low_band is not None:
            slab += low_band.slab(z0, z1)
        total += float(slab.sum(dtype=np.float64))
        total_sq += float(np.square(slab, dtype=np.float64).sum())
        release_pages(result)
    if match_mean_std:
        mean_out, std_out = _mean_std(total, total_sq, result.size)
        _rescale(result, mean_from=mean_out, std_from=std_out, mean_to=mean_in, std_to=std_in)
    return result
