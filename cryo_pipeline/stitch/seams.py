"""Seam check of a stitched volume: how much adjacent y-rows differ, computed with Dask.

``mean |v[:, y + 1, :] − v[:, y, :]|`` for every row pair, one small task per Zarr chunk
(never the whole volume in one process); :func:`cryo_pipeline.ops.slabs.seam_ratio`
turns it into the seam ratio.
"""

from __future__ import annotations

import os
from typing import Any

import dask
import dask.array as da
import numpy as np

__all__ = ["row_step_means_zarr"]


def row_step_means_zarr(path: str | os.PathLike[str], *, client: Any | None = None) -> np.ndarray:
    """Mean absolute difference between adjacent y-rows of a `(d, h, w)` Zarr volume.

    Returns
    -------
    numpy.ndarray
        `(h − 1,)` float64.
    """
    volume = da.from_zarr(str(path))
    if volume.ndim != 3 or volume.shape[1] < 2:
        raise ValueError(f"{path}: need a (d, h, w) volume with h >= 2, got shape {volume.shape}")
    steps = abs(da.diff(volume.astype(np.float64), axis=1)).mean(axis=(0, 2))
    if client is not None:
        return np.asarray(client.compute(steps).result())
    return np.asarray(dask.compute(steps)[0])
