"""Which tilts of a series go where: inside a range, held out for the reference, even/odd halves (pure).

A real tilt series recorded over a wide range (e.g. ±76°) is split three ways for
validation (DESIGN.md §5, issue 12):

* the **working** tilts, inside the sheet's ``tilt_min_deg``/``tilt_max_deg``: what every
  method sees;
* the **reference** tilts, inside ``reference_tilt_min_deg``/``reference_tilt_max_deg``
  (a superset of the working range): a full-range reference is reconstructed from them;
* the **held-out** tilts = reference minus working: real measurements no method saw,
  used for the held-out-band FSC and the reprojection agreement.

Halves alternate along the angle-sorted working tilts (even = positions 0, 2, 4, … in
ascending angle, odd = 1, 3, 5, …), so each half covers the whole range at twice the
step and the two halves share no image.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ANGLE_TOLERANCE_DEG", "alternate_halves", "heldout_tilts", "select_tilts_in_range", "tilts_in_range"]

ANGLE_TOLERANCE_DEG = 1e-2
"""An angle within this of a range bound counts as inside (file angles are rounded)."""


def _angles(angles_deg) -> np.ndarray:
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 0 or not np.all(np.isfinite(angles)):
        raise ValueError(f"tilt angles must be a non-empty list of finite numbers, got {angles.tolist()}")
    return angles


def tilts_in_range(angles_deg, *, tilt_min_deg: float, tilt_max_deg: float) -> np.ndarray:
    """Indices (file order) of the tilts inside [tilt_min_deg, tilt_max_deg], ±0.01°.

    Returns
    -------
    numpy.ndarray
        ``(n_inside,)`` int64, ascending index; possibly empty.
    """
    angles = _angles(angles_deg)
    inside = (angles >= tilt_min_deg - ANGLE_TOLERANCE_DEG) & (angles <= tilt_max_deg + ANGLE_TOLERANCE_DEG)
    return np.flatnonzero(inside)


def heldout_tilts(
    angles_deg,
    *,
    working_range_deg: tuple[float, float],
    reference_range_deg: tuple[float, float],
) -> np.ndarray:
    """Indices of the tilts inside the reference range but outside the working range.

    Raises
    ------
    ValueError
        The reference range does not contain the working range.
    """
    (w_lo, w_hi), (r_lo, r_hi) = working_range_deg, reference_range_deg
    if r_lo > w_lo + ANGLE_TOLERANCE_DEG or r_hi < w_hi - ANGLE_TOLERANCE_DEG:
        raise ValueError(
            f"reference range [{r_lo:g}, {r_hi:g}] deg does not contain the working range [{w_lo:g}, {w_hi:g}] deg"
        )
    reference = tilts_in_range(angles_deg, tilt_min_deg=r_lo, tilt_max_deg=r_hi)
    working = set(tilts_in_range(angles_deg, tilt_min_deg=w_lo, tilt_max_deg=w_hi).tolist())
    return np.array([i for i in reference if i not in working], dtype=np.int64)


def alternate_halves(angles_deg) -> tuple[np.ndarray, np.ndarray]:
    """Split tilts into two halves alternating along ascending angle.

    Parameters
    ----------
    angles_deg : sequence of float
        ``(n_tilts,)`` angles in file order.

    Returns
    -------
    even, odd : numpy.ndarray
        Indices into ``angles_deg`` (file order, ascending) of the tilts at even and at
        odd positions of the angle-sorted list. ``len(even) - len(odd)`` is 0 or 1.
    """
    angles = _angles(angles_deg)
    order = np.argsort(angles, kind="stable")
    return np.sort(order[0::2]), np.sort(order[1::2])


def select_tilts_in_range(angles_deg: np.ndarray, *, tilt_min_deg: float, tilt_max_deg: float) -> np.ndarray:
    """Indices of the tilts inside [tilt_min_deg, tilt_max_deg] (0.01° tolerance), at least two.

    This is how a real full-range series becomes a wedge problem: the sheet's range
    may be narrower than the file's angles (e.g. keep ±60° of a ±76° series).

    Raises
    ------
    ValueError
        Fewer than two tilts lie inside the range.
    """
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    keep = tilts_in_range(angles_deg, tilt_min_deg=tilt_min_deg, tilt_max_deg=tilt_max_deg)
    if keep.size < 2:
        raise ValueError(
            f"only {keep.size} tilt(s) of {angles_deg.min():g}..{angles_deg.max():g} deg lie inside the sheet's "
            f"range [{tilt_min_deg:g}, {tilt_max_deg:g}]; widen tilt_min_deg/tilt_max_deg"
        )
    return keep
