"""Where to cut subtomograms: local mask fractions, centre sampling, exact crops, splits.

**Centre convention.** A cube of edge ``s`` centred at voxel ``c`` spans
``[c − s//2, c − s//2 + s)`` on every axis (even ``s``: ``s/2`` voxels before ``c``
and ``s/2 − 1`` after; odd ``s``: symmetric). The core cube (``cube_px``, the one
whose mask fraction is judged) and the stored cube (:func:`stored_cube_px`, √2
larger when enlarged for rotations) share the centre, so the core sits at offset
``stored//2 − cube//2`` inside the stored cube.

**Local mask fraction** of a centre = (mask voxels inside its core cube) / ``cube³``;
voxels outside the volume count as outside the mask. Counts are exact integers from
running box sums (O(N), one z-slice of memory at a time), so a fraction compares
exactly with a brute-force count.

Sampling follows DeepDeWedge's prepare-data (peers.md §2): keep a cube only if its
mask fraction ≥ ``min_mask_fraction`` (default 0.3), cubes √2 larger (even) for
rotation, a seeded validation split; and IsoNet's extract (§1c): centres inside the
mask, drawn at random, but *without* replacement and with clear errors instead of
``a must be greater than 0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, Literal, NamedTuple

import numpy as np

__all__ = [
    "CentreSample",
    "crop_cube",
    "require_cube_fits",
    "local_mask_fraction_3d",
    "sample_centres",
    "split_train_validation",
    "stored_cube_px",
    "valid_centre_box",
]

_CENTRE_STREAM, _SPLIT_STREAM = 1, 2  # independent random streams derived from one seed


class CentreSample(NamedTuple):
    """Result of :func:`sample_centres`.

    Attributes
    ----------
    centres : `(n, 3)` int64
        Cube centres (z, y, x), sorted lexicographically.
    fractions : `(n,)` float64
        Local mask fraction of each core cube.
    info : dict
        ``n_requested``, ``n_candidates`` (centres that qualify), ``n_selected``,
        ``took_all`` (fewer candidates than requested, all taken), ``best_fraction``,
        ``mask_fraction``, ``sampling``, ``stride_px`` (grid only).
    """

    centres: np.ndarray
    fractions: np.ndarray
    info: dict[str, Any]


def stored_cube_px(cube_px: int, *, enlarge_for_rotation: bool) -> int:
    """Edge of the stored cube: ``cube_px``, or the smallest even integer ≥ √2·cube_px
    when enlarged (64 → 92, 96 → 136), so a rotated crop has no empty corners."""
    if cube_px < 1:
        raise ValueError(f"cube_px must be >= 1, got {cube_px}")
    if not enlarge_for_rotation:
        return int(cube_px)
    size = math.ceil(math.sqrt(2.0) * cube_px)
    return size + (size % 2)


def valid_centre_box(shape_zyx: Iterable[int], *, cube_px: int) -> tuple[tuple[int, int], ...]:
    """Centres whose ``cube_px`` cube lies fully inside a volume of ``shape_zyx``.

    Returns
    -------
    ((lo_z, hi_z), (lo_y, hi_y), (lo_x, hi_x))
        Half-open ranges ``lo = cube//2``, ``hi = n − cube + cube//2 + 1``; an axis
        thinner than the cube gives ``hi <= lo`` (no valid centre).
    """
    half = cube_px // 2
    return tuple((half, int(n) - cube_px + half + 1) for n in shape_zyx)


def require_cube_fits(shape_zyx: Iterable[int], *, stored_px: int, name: str = "tomogram") -> None:
    """Raise the one-line error when a `(d, h, w)` tomogram is thinner than the stored cube."""
    shape = tuple(int(s) for s in shape_zyx)
    if min(shape) < stored_px:
        raise ValueError(f"tomogram {name} is {shape} voxels but the stored cube is {stored_px}; "
                         "lower extract.cube_size_px or bin less")


def _cube_slices(centre_zyx: Iterable[int], cube_px: int) -> tuple[slice, ...]:
    half = cube_px // 2
    return tuple(slice(int(c) - half, int(c) - half + cube_px) for c in centre_zyx)


def crop_cube(volume: np.ndarray, centre_zyx: Iterable[int], cube_px: int) -> np.ndarray:
    """Copy the `(cube_px,)*3` cube centred at ``centre_zyx`` (module convention) as float32.

    Parameters
    ----------
    volume : `(d, h, w)` array (a memmap is read only where the cube is)
    centre_zyx : 3 ints
    cube_px : int

    Raises
    ------
    ValueError
        The cube does not lie fully inside the volume.
    """
    centre = tuple(int(c) for c in centre_zyx)
    box = valid_centre_box(volume.shape, cube_px=cube_px)
    if len(centre) != 3 or not all(lo <= c < hi for c, (lo, hi) in zip(centre, box, strict=True)):
        raise ValueError(f"crop_cube: a {cube_px}³ cube centred at {centre} does not fit in {tuple(volume.shape)}")
    return np.array(volume[_cube_slices(centre, cube_px)], dtype=np.float32, copy=True)


def _box_sum_axis(values: np.ndarray, cube_px: int, axis: int, ext: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sum of 2D ``values`` over ``[c − cube//2, c − cube//2 + cube)`` (clipped) at every ``c`` along ``axis``.

    ``ext`` (length ``n + cube_px`` along ``axis``) receives the cumulative sum padded so
    that ``ext[i] = C[clip(i − cube//2, 0, n)]``; the box sum is ``ext[c + cube] − ext[c]``.
    """
    n, half = values.shape[axis], cube_px // 2
    e = ext if axis == 0 else ext.T
    e[: half + 1] = 0
    if axis == 0:  # row by row: numpy's cumsum along axis 0 is several times slower
        for i in range(n):
            np.add(e[half + i], values[i], out=e[half + 1 + i])
    else:
        np.cumsum(values, axis=1, out=ext[:, half + 1: half + 1 + n])
    e[half + 1 + n:] = e[half + n]
    if axis == 0:
        return np.subtract(ext[cube_px: cube_px + n], ext[:n], out=out)
    return np.subtract(ext[:, cube_px: cube_px + n], ext[:, :n], out=out)


def _iter_local_counts(mask: np.ndarray, cube_px: int, z_values: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(z, counts)``: mask voxels in the cube at every (y, x) of slice ``z``.

    ``mask`` is a `(d, h, w)` array (non-zero = inside); ``z_values`` must ascend.
    ``counts`` is an `(h, w)` integer array, overwritten by the next step (copy to keep).
    A running sum over the window's z-slices is kept, so a full scan reads each slice
    twice and holds a few slices of sums.
    """
    d, h, w = mask.shape
    # int32 unless a cumulative sum could overflow it (at most cube² · max(h, w))
    dtype = np.int32 if cube_px * cube_px * (max(h, w) + cube_px) < 2**31 else np.int64
    lo = hi = 0
    zsum = np.zeros((h, w), dtype=dtype)
    ext_y, ext_x = np.empty((h + cube_px, w), dtype=dtype), np.empty((h, w + cube_px), dtype=dtype)
    box_y, counts = np.empty((h, w), dtype=dtype), np.empty((h, w), dtype=dtype)

    def slices(a: int, b: int) -> np.ndarray | int:
        return np.count_nonzero(mask[a:b], axis=0) if b > a else 0

    for z in z_values:
        new_lo, new_hi = max(0, z - cube_px // 2), min(d, z - cube_px // 2 + cube_px)
        if new_lo >= hi or new_lo < lo:
            zsum[...] = slices(new_lo, new_hi)
        else:
            zsum += slices(hi, new_hi)
            zsum -= slices(lo, new_lo)
        lo, hi = new_lo, new_hi
        _box_sum_axis(zsum, cube_px, 0, ext_y, box_y)
        yield int(z), _box_sum_axis(box_y, cube_px, 1, ext_x, counts)


def local_mask_fraction_3d(mask: np.ndarray, *, cube_px: int) -> np.ndarray:
    """Fraction of mask voxels in the ``cube_px`` cube centred at every voxel.

    Parameters
    ----------
    mask : `(d, h, w)` array
        Non-zero = inside the mask.
    cube_px : int
        Cube edge (even or odd; centre convention in the module docstring).

    Returns
    -------
    `(d, h, w)` float64
        ``count / cube_px³`` (voxels outside the volume count as outside the mask).
        O(N) time; 8 bytes per voxel of output (:func:`sample_centres` streams instead).
    """
    arr = np.asarray(mask)
    if arr.ndim != 3 or cube_px < 1:
        raise ValueError(f"local_mask_fraction_3d: need a 3D mask and cube_px >= 1, got {arr.shape}, {cube_px}")
    out = np.empty(arr.shape, dtype=np.float64)
    for z, counts in _iter_local_counts(arr, cube_px, range(arr.shape[0])):
        np.divide(counts, cube_px**3, out=out[z])
    return out


def _min_count(min_mask_fraction: float, volume_px: int) -> int:
    """Smallest integer k with ``k / volume_px >= min_mask_fraction`` in floating point."""
    k = max(0, math.ceil(min_mask_fraction * volume_px))
    while k > 0 and (k - 1) / volume_px >= min_mask_fraction:
        k -= 1
    while k / volume_px < min_mask_fraction:
        k += 1
    return k


def _grid(lo: int, hi: int, stride: int) -> np.ndarray:
    return np.arange(lo, hi, stride, dtype=np.int64)


def sample_centres(
    mask: np.ndarray,
    *,
    cube_px: int,
    n: int,
    seed: int,
    sampling: Literal["random", "grid"] = "random",
    stride_px: int | None = None,
    min_mask_fraction: float = 0.3,
    stored_px: int | None = None,
    name: str = "tomogram",
) -> CentreSample:
    """Choose cube centres inside a mask.

    Parameters
    ----------
    mask : `(d, h, w)` array
        Non-zero = inside (same grid as the tomogram).
    cube_px : int
        Core cube edge: the cube whose mask fraction is judged.
    n : int
        random: cubes to draw (without replacement; all candidates if fewer).
        grid: ignored, every grid point that qualifies is kept.
    seed : int
        Seed of the draw (the dataset's seed); same seed → same centres.
    sampling : {"random", "grid"}
        random: among valid centres inside the mask whose fraction ≥ ``min_mask_fraction``.
        grid: points ``lo + k·stride`` of the valid box whose fraction ≥ ``min_mask_fraction``.
    stride_px : int, optional
        Grid stride; default ``cube_px``.
    min_mask_fraction : float in [0, 1]
        Minimum local mask fraction of a kept cube.
    stored_px : int, optional
        Edge of the stored cube that must lie inside the volume; default ``cube_px``.
    name : str
        Tomogram name used in error messages.

    Returns
    -------
    CentreSample
        ``centres`` `(k, 3)` int64, ``fractions`` `(k,)` float64, ``info`` dict.

    Raises
    ------
    ValueError
        One line naming the tomogram, fraction and sizes: a tomogram thinner than the
        stored cube, an empty mask, or no cube reaching ``min_mask_fraction``.
    """
    arr = np.asarray(mask)
    stored = int(stored_px or cube_px)
    if arr.ndim != 3:
        raise ValueError(f"mask of {name} must be 3D (d, h, w), got shape {arr.shape}")
    if sampling not in ("random", "grid"):
        raise ValueError(f"sampling must be 'random' or 'grid', got {sampling!r}")
    if n < 1 or not 0.0 <= min_mask_fraction <= 1.0 or stored < cube_px:
        raise ValueError(f"sample_centres: need n >= 1, 0 <= min_mask_fraction <= 1 and stored_px >= cube_px, "
                         f"got n={n}, min_mask_fraction={min_mask_fraction}, stored_px={stored}, cube_px={cube_px}")
    shape = tuple(int(s) for s in arr.shape)
    require_cube_fits(shape, stored_px=stored, name=name)
    n_inside = int(np.count_nonzero(arr))
    if n_inside == 0:
        raise ValueError(f"mask of {name} is empty (0 % of voxels); lower mask.density_percentage/std_percentage "
                         "or check the tomogram's contrast (mask.density_contrast)")
    covered = n_inside / arr.size
    volume_px = cube_px**3
    need = _min_count(min_mask_fraction, volume_px)
    (zl, zh), (yl, yh), (xl, xh) = valid_centre_box(shape, cube_px=stored)
    best = 0
    info: dict[str, Any] = {"n_requested": int(n), "sampling": sampling, "mask_fraction": covered}

    if sampling == "grid":
        stride = int(stride_px or cube_px)
        if stride < 1:
            raise ValueError(f"grid stride must be >= 1, got {stride}")
        gy, gx = _grid(yl, yh, stride), _grid(xl, xh, stride)
        found: list[np.ndarray] = []
        counts_kept: list[np.ndarray] = []
        for z, counts in _iter_local_counts(arr, cube_px, _grid(zl, zh, stride)):
            sub = counts[np.ix_(gy, gx)]
            best = max(best, int(sub.max()))
            iy, ix = np.nonzero(sub >= need)
            found.append(np.stack([np.full(iy.size, z), gy[iy], gx[ix]], axis=1))
            counts_kept.append(sub[iy, ix])
        centres = np.concatenate(found).astype(np.int64)
        kept = np.concatenate(counts_kept)
        info.update(stride_px=stride, n_candidates=int(len(centres)))
    else:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CENTRE_STREAM,)))
        centres, kept, total, best = _draw_random(arr, cube_px, need, n, rng, ((zl, zh), (yl, yh), (xl, xh)))
        info["n_candidates"] = total

    info.update(best_fraction=best / volume_px, n_selected=int(len(centres)))
    info["took_all"] = sampling == "random" and 0 < info["n_candidates"] < n
    if len(centres) == 0:
        raise ValueError(f"no cube of {cube_px}³ voxels in {name} reaches min_mask_fraction={min_mask_fraction:g}: "
                         f"the best has {best / volume_px:.2g} (mask covers {100 * covered:.3g} %); "
                         "lower extract.min_mask_fraction or enlarge the mask")
    return CentreSample(centres, kept / volume_px, info)


def _draw_random(
    mask: np.ndarray, cube_px: int, need: int, n: int, rng: np.random.Generator, box: tuple[tuple[int, int], ...]
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Uniform draw of ``n`` candidates without replacement, in one streaming pass.

    A candidate is a centre in ``box`` inside the mask with at least ``need`` mask voxels
    in its cube. Every candidate gets an independent uniform key (drawn in scan order,
    so the draw is a function of the seed and the mask) and the ``n`` smallest keys win,
    which picks every ``n``-subset with equal probability while holding only ``n`` of them.

    Returns
    -------
    centres : `(k, 3)` int64, sorted; counts : `(k,)` mask voxels per cube;
    n_candidates : int; best : int (most mask voxels of any in-mask centre)
    """
    (zl, zh), (yl, yh), (xl, xh) = box
    keys = np.zeros(0)
    rows = np.zeros((0, 3), dtype=np.int64)
    counts_kept = np.zeros(0, dtype=np.int64)
    total = best = 0
    for z, counts in _iter_local_counts(mask, cube_px, range(zl, zh)):
        inside = mask[z, yl:yh, xl:xh] != 0
        if not inside.any():
            continue
        sub = counts[yl:yh, xl:xh]
        best = max(best, int(sub[inside].max()))
        iy, ix = np.nonzero(inside & (sub >= need))
        if iy.size == 0:
            continue
        total += iy.size
        new_keys = rng.random(iy.size)
        if keys.size == n:  # full: only keys below the current n-th smallest can enter
            enter = new_keys < keys.max()
            new_keys, iy, ix = new_keys[enter], iy[enter], ix[enter]
        keys = np.concatenate([keys, new_keys])
        rows = np.concatenate([rows, np.stack([np.full(iy.size, z), iy + yl, ix + xl], axis=1)])
        counts_kept = np.concatenate([counts_kept, sub[iy, ix]])
        if keys.size > n:
            keep = np.argpartition(keys, n - 1)[:n]
            keys, rows, counts_kept = keys[keep], rows[keep], counts_kept[keep]
    order = np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))
    return rows[order].astype(np.int64), counts_kept[order], int(total), best


def split_train_validation(n: int, *, validation_fraction: float, seed: int) -> np.ndarray:
    """Seeded train/validation split of ``n`` cubes.

    Returns
    -------
    `(n,)` bool
        True = validation. ``round(n · fraction)`` cubes, at least one when the fraction
        is > 0 and n ≥ 2, and never all of them (one cube is always left for training).
    """
    if n < 0 or not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"split_train_validation: need n >= 0 and 0 <= validation_fraction < 1, "
                         f"got n={n}, validation_fraction={validation_fraction}")
    n_val = math.floor(n * validation_fraction + 0.5)
    if validation_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = min(n_val, max(n - 1, 0))
    is_val = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_STREAM,)))
    is_val[rng.choice(n, size=n_val, replace=False)] = True
    return is_val
