"""IsoNet-style density masks: where in a tomogram is there something worth training on.

:func:`density_mask_3d` follows IsoNet's ``make_mask`` (peers.md §1b) step by step:

1. Downsample ×2 by 2×2×2 block averaging (anti-aliased binning; an odd axis is
   first padded by repeating its last slice), so the nearest-neighbour ×2 upsampling
   of step 6 puts every block back exactly onto the voxels it came from.
2. Gaussian filter, σ = ``patch_size_px / 2`` (downsampled voxels).
3. **Density mask:** ``maximum_filter`` (window ``2·patch + 1``, mode ``reflect``) of
   the *density-signed* volume (negated when density is dark, as in raw cryo-ET where
   IsoNet negates the tomogram), kept where it exceeds its ``(100 − density%)``-th
   percentile. Skipped (all ones) when ``density_percentage > 99.8``.
4. **Std mask:** local standard deviation over the same ``(2·patch + 1)³`` box from
   box sums, variance ``E[x²] − E[x]²`` clipped at 0, kept where it exceeds its
   ``(100 − std%)``-th percentile.
5. The product (intersection) of both.
6. Nearest ×2 upsampling back to the exact input shape, threshold > 0.5, then
   ``z_crop`` zeroes ``⌊z_crop · Z⌋`` slices at *each* end, with Z the input depth
   (IsoNet crops on the downsampled grid; cropping at full resolution makes the
   count exact and differs from IsoNet by at most one slice).

Contrast (:func:`resolve_density_contrast`): raw cryo-ET density is **dark** (lower
than the solvent); simulated phantoms and contrast-inverted tomograms are **bright**.
``"auto"`` picks the side whose histogram tail is heavier: bright when
``p99.9 − median > median − p0.1``, else dark (a tie counts as dark, the cryo-ET case).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import ndimage

__all__ = ["density_mask_3d", "mask_fraction", "resolve_density_contrast"]

Contrast = Literal["auto", "dark", "bright"]

#: Above this density percentage the density mask is skipped (IsoNet's rule).
DENSITY_SKIP_PERCENTAGE = 99.8
#: At most this many voxels (a regular stride through the volume) go into the percentiles
#: of :func:`resolve_density_contrast`, so it stays cheap on a 1024² × 512 tomogram.
_CONTRAST_SAMPLE = 1 << 24


def resolve_density_contrast(volume: np.ndarray) -> Literal["dark", "bright"]:
    """Decide whether the density of ``volume`` is darker or brighter than its background.

    Parameters
    ----------
    volume : `(d, h, w)` array (any real dtype; a memmap is fine)
        Tomogram.

    Returns
    -------
    {"dark", "bright"}
        ``"bright"`` when the upper tail of the histogram is heavier,
        ``p99.9 − median > median − p0.1``; otherwise ``"dark"`` (raw cryo-ET).
        Volumes larger than 2²⁴ voxels are judged on a regular stride of that many voxels.

    Raises
    ------
    ValueError
        Empty volume.
    """
    flat = np.asarray(volume).reshape(-1)
    if flat.size == 0:
        raise ValueError("resolve_density_contrast: the volume is empty")
    step = max(1, math.ceil(flat.size / _CONTRAST_SAMPLE))
    sample = np.asarray(flat[::step], dtype=np.float64)
    low, median, high = np.percentile(sample, [0.1, 50.0, 99.9])
    return "bright" if (high - median) > (median - low) else "dark"


def mask_fraction(mask: np.ndarray) -> float:
    """Fraction of non-zero voxels of ``mask`` (`(d, h, w)`, any dtype), in [0, 1]."""
    arr = np.asarray(mask)
    return float(np.count_nonzero(arr)) / arr.size if arr.size else 0.0


def _block_mean_2x(volume: np.ndarray) -> np.ndarray:
    """`(d, h, w)` → `(⌈d/2⌉, ⌈h/2⌉, ⌈w/2⌉)` float64 by 2×2×2 averaging (odd axes edge-padded)."""
    vol = np.asarray(volume)
    if vol.dtype.kind != "f":
        vol = vol.astype(np.float32)
    pad = [(0, n % 2) for n in vol.shape]
    if any(p[1] for p in pad):
        vol = np.pad(vol, pad, mode="edge")
    d, h, w = (n // 2 for n in vol.shape)
    return vol.reshape(d, 2, h, 2, w, 2).mean(axis=(1, 3, 5), dtype=np.float64)  # no full-size float64 copy


def _local_std(volume: np.ndarray, *, size: int) -> np.ndarray:
    """Local standard deviation over a ``size³`` box (reflect), variance clipped at 0."""
    centred = volume - volume.mean()  # better conditioned E[x²] − E[x]²
    mean = ndimage.uniform_filter(centred, size=size, mode="reflect")
    mean_sq = ndimage.uniform_filter(centred * centred, size=size, mode="reflect")
    return np.sqrt(np.clip(mean_sq - mean * mean, 0.0, None))


def density_mask_3d(
    volume: np.ndarray,
    *,
    patch_size_px: int = 4,
    density_percentage: float = 50.0,
    std_percentage: float = 50.0,
    z_crop: float = 0.0,
    density_contrast: Contrast = "auto",
) -> np.ndarray:
    """IsoNet-style mask: local-max density ∩ local std, plus ``z_crop`` (module docstring).

    Parameters
    ----------
    volume : `(d, h, w)` array
        Tomogram (ideally CTF-deconvolved), any real dtype.
    patch_size_px : int
        Patch size p of the local filters: Gaussian σ = p/2, windows 2p + 1
        (in downsampled voxels).
    density_percentage : float in (0, 100]
        Percent of (downsampled) voxels kept by the density mask; > 99.8 skips it.
    std_percentage : float in (0, 100]
        Percent of (downsampled) voxels kept by the local-std mask.
    z_crop : float in [0, 0.5)
        Fraction of z slices zeroed at *each* end: ``⌊z_crop · d⌋`` top and bottom.
    density_contrast : {"auto", "dark", "bright"}
        Whether density is darker (raw cryo-ET) or brighter (phantoms) than the
        background; ``"auto"`` uses :func:`resolve_density_contrast` on ``volume``.

    Returns
    -------
    `(d, h, w)` uint8
        1 inside the mask, 0 outside; exactly the input shape (odd sizes included).

    Raises
    ------
    ValueError
        Not 3D, a side smaller than 2, or a parameter out of range (named).
    """
    vol = np.asarray(volume)
    if vol.ndim != 3 or min(vol.shape) < 2:
        raise ValueError(f"density_mask_3d: volume must be 3D with every side >= 2, got shape {vol.shape}")
    if patch_size_px < 1:
        raise ValueError(f"density_mask_3d: patch_size_px must be >= 1, got {patch_size_px}")
    for name, value in (("density_percentage", density_percentage), ("std_percentage", std_percentage)):
        if not 0.0 < value <= 100.0:
            raise ValueError(f"density_mask_3d: {name} must be in (0, 100], got {value}")
    if not 0.0 <= z_crop < 0.5:
        raise ValueError(f"density_mask_3d: z_crop must be in [0, 0.5), got {z_crop}")
    if density_contrast not in ("auto", "dark", "bright"):
        raise ValueError(f"density_mask_3d: density_contrast must be 'auto', 'dark' or 'bright', got {density_contrast!r}")
    contrast = resolve_density_contrast(vol) if density_contrast == "auto" else density_contrast
    window = 2 * int(patch_size_px) + 1

    small = _block_mean_2x(vol)
    small = ndimage.gaussian_filter(small, sigma=patch_size_px / 2.0, mode="reflect")
    keep = np.ones(small.shape, dtype=bool)
    if density_percentage <= DENSITY_SKIP_PERCENTAGE:
        signed = -small if contrast == "dark" else small
        local_max = ndimage.maximum_filter(signed, size=window, mode="reflect")
        keep &= local_max > np.percentile(local_max, 100.0 - density_percentage)
        del signed, local_max
    local_std = _local_std(small, size=window)
    keep &= local_std > np.percentile(local_std, 100.0 - std_percentage)
    del local_std, small

    d, h, w = vol.shape
    up = keep.repeat(2, axis=0)[:d].repeat(2, axis=1)[:, :h].repeat(2, axis=2)[:, :, :w]
    mask = up.astype(np.uint8)  # IsoNet's "> 0.5" after upsampling is the identity on a 0/1 mask
    n_crop = math.floor(z_crop * d + 1e-9)  # 0.29 * 100 is 28.999999999999996 in floating point
    if n_crop:
        mask[:n_crop] = 0
        mask[d - n_crop:] = 0
    return mask
