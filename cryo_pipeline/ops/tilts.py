"""Which tilts of a series lie inside a tilt range (pure)."""

from __future__ import annotations

import numpy as np

__all__ = ["select_tilts_in_range"]


def select_tilts_in_range(angles_deg: np.ndarray, *, tilt_min_deg: float, tilt_max_deg: float) -> np.ndarray:
    """Indices of the tilts inside [tilt_min_deg, tilt_max_deg] (0.01° tolerance).

    This is how a real full-range series becomes a wedge problem: the sheet's range
    may be narrower than the file's angles (e.g. keep ±60° of a ±76° series).

    Raises
    ------
    ValueError
        Fewer than two tilts lie inside the range.
    """
    keep = np.flatnonzero((angles_deg >= tilt_min_deg - 1e-2) & (angles_deg <= tilt_max_deg + 1e-2))
    if keep.size < 2:
        raise ValueError(
            f"only {keep.size} tilt(s) of {angles_deg.min():g}..{angles_deg.max():g} deg lie inside the sheet's "
            f"range [{tilt_min_deg:g}, {tilt_max_deg:g}]; widen tilt_min_deg/tilt_max_deg"
        )
    return keep
