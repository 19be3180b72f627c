"""The CN paper's two many-object phantom sets (Van Veen et al. 2024, §3.3), at any size.

* **spheres set** (:func:`spheres_set`): "a collection of binarized hollow spheres of
  constant density and variable sizes (16 to 64 pixels in diameter)" in a
  1024 × 1024 × 256 (x × y × z) slab, low-pass filtered "to render shape surfaces smooth";
* **shapes set** (:func:`shapes_set`): "binarized shapes [...] full spheres, ellipsoids,
  pyramids, cubes, rectangular prisms, circular discs, as well as 4- and 6-pointed 3D
  crosses" in the same slab, low-pass filtered (built by
  :func:`cryo_pipeline.ops.phantoms.mixed_shapes`).

Object sizes scale with the slab's depth ``d`` against the paper's 256: diameters
``(16, 64) · d / 256`` px, with a floor of 6 px so that the smallest shell stays hollow
after the low-pass (at ``d = 48``: 6–12 px). The paper gives no shell thickness: here
1/8 of the diameter, at least 1.5 px. Noise is not part of the volume: the sheet's
``snr`` adds it to the tilt series (noiseless: leave ``snr`` empty).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

from cryo_pipeline.ops.phantoms import mixed_shapes

__all__ = ["PHANTOM_SETS", "make_phantom_set", "paper_diameter_range_px", "shapes_set", "spheres_set"]

_PAPER_DEPTH_PX = 256
_PAPER_DIAMETERS_PX = (16.0, 64.0)
_MIN_DIAMETER_PX = 6.0
_FILL_FRACTION = 0.08  # of the volume taken by the objects' bounding balls (mean size)
_MAX_TRIES = 200


def paper_diameter_range_px(depth_px: int) -> tuple[float, float]:
    """Object diameters for a slab ``depth_px`` deep: the paper's 16–64 px at 256, scaled, floor 6 px."""
    factor = int(depth_px) / _PAPER_DEPTH_PX
    lo, hi = (max(_MIN_DIAMETER_PX, s * factor) for s in _PAPER_DIAMETERS_PX)
    return lo, max(lo, hi)


def _check(shape_zyx) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in shape_zyx)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape_zyx must be three positive sizes (d, h, w), got {shape_zyx!r}")
    return shape  # type: ignore[return-value]


def spheres_set(shape_zyx, *, seed: int = 0, diameter_range_px: tuple[float, float] | None = None,
                n_spheres: int | None = None, lowpass_sigma_px: float = 0.7) -> np.ndarray:
    """Hollow spheres of constant density, random diameters and positions, then a low-pass.

    Parameters
    ----------
    shape_zyx : (d, h, w)
    seed : int
        Seed of the sizes and positions.
    diameter_range_px : (min, max), optional
        Default :func:`paper_diameter_range_px` of ``d``.
    n_spheres : int, optional
        Default: bounding balls of the mean size fill 8 % of the volume.
    lowpass_sigma_px : float
        Gaussian σ of the final low-pass (0 = binary).

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` float32 in [0, 1]. Spheres do not overlap unless 200 draws found no
        free place; each lies inside the volume with room for the low-pass tail.
    """
    shape = _check(shape_zyx)
    lo, hi = diameter_range_px or paper_diameter_range_px(shape[0])
    margin = 1.0 + np.ceil(3.0 * lowpass_sigma_px)
    if not 0 < lo <= hi or hi / 2 + margin > (min(shape) - 1) / 2:
        raise ValueError(f"sphere diameters {lo:g}..{hi:g} px do not fit in {shape} (with a {margin:g} px margin); "
                         "use a larger volume or smaller diameters")
    if n_spheres is None:
        n_spheres = max(1, int(_FILL_FRACTION * np.prod(shape) / (np.pi / 6 * ((lo + hi) / 2) ** 3)))
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    volume = np.zeros(shape, dtype=bool)
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(int(n_spheres)):
        radius = rng.uniform(lo, hi) / 2
        low = radius + margin
        high = np.array(shape, dtype=np.float64) - 1 - low
        for _ in range(_MAX_TRIES):
            centre = rng.uniform(low, high)
            if all(np.linalg.norm(centre - c) > radius + r + 1 for c, r in placed):
                break
        placed.append((centre, radius))
        r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        thickness = max(1.5, radius / 4)  # 1/8 of the diameter
        volume |= (r2 <= radius**2) & (r2 > (radius - thickness) ** 2)
    out = volume.astype(np.float64)
    if lowpass_sigma_px > 0:
        out = gaussian_filter(out, sigma=lowpass_sigma_px, mode="constant")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def shapes_set(shape_zyx, *, seed: int = 0, lowpass_sigma_px: float = 0.7) -> np.ndarray:
    """The paper's mixed geometric shapes, sized like :func:`spheres_set` (largest extent).

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` float32 in [0, 1].
    """
    shape = _check(shape_zyx)
    return mixed_shapes(shape, seed=seed, size_range_px=paper_diameter_range_px(shape[0]),
                        lowpass_sigma_px=lowpass_sigma_px)


PHANTOM_SETS: dict[str, Callable[..., np.ndarray]] = {"spheres_set": spheres_set, "shapes_set": shapes_set}
"""Set name (a sheet ``source``) → ``f(shape_zyx, *, seed)``."""

DEFAULT_SHAPE_ZYX = (64, 128, 128)  # a 1/8 x-y crop of the paper's slab at 1/4 of its depth


def make_phantom_set(name: str, *, shape_zyx=None, seed: int = 0) -> np.ndarray:
    """Build a set by name; ``shape_zyx`` None = :data:`DEFAULT_SHAPE_ZYX`.

    Returns
    -------
    numpy.ndarray
        ``(d, h, w)`` float32 in [0, 1].
    """
    if name not in PHANTOM_SETS:
        raise ValueError(f"unknown phantom set {name!r}; known sets: {', '.join(sorted(PHANTOM_SETS))}")
    return PHANTOM_SETS[name](DEFAULT_SHAPE_ZYX if shape_zyx is None else shape_zyx, seed=seed)
