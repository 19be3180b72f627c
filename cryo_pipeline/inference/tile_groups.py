"""Split tiled inference into N independent jobs: each predicts one group of tiles.

For tomograms too large (or too slow) for one job, the tile grid of
:func:`cryo_pipeline.ops.blending.tile_origins_3d` (z-major) is cut into ``n_groups``
contiguous, balanced runs of tiles (:func:`tile_group`). Job ``g`` predicts only its
run (:func:`predict_tile_group`, same normalisation, data consistency and batching as
:func:`~cryo_pipeline.inference.tiled.predict_tiled`, through the shared
:func:`~cryo_pipeline.inference.tile_core.predict_tile_batches`) and writes the
**unblended** tiles to its own tile store (:func:`write_tile_store`, from
:mod:`cryo_pipeline.io.tile_store`). The Dask stitcher
(:func:`cryo_pipeline.stitch.dask_blend.stitch_tile_stores`) blends all groups with the
same window, so the result equals ``predict_tiled`` up to float rounding.

Limitation: every axis of the volume must be at least the tile size. ``predict_tiled``
pads an axis thinner than the tile (one tile spanning the axis); the split path does not
(the stitcher's tiles are crops of the volume), and says so: use a smaller
``predict.tile_px`` or the single-job mode (``execution.predict_n_jobs: 1``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import zarr
from torch import nn

from cryo_pipeline.inference.tile_core import plan_tiles, predict_tile_batches, resolve_normalization
from cryo_pipeline.io.tile_store import write_tile_store
from cryo_pipeline.ops.blending import as_zyx, tile_origins_3d

__all__ = ["group_tile_origins", "predict_tile_group", "tile_group", "write_tile_store"]


def tile_group(origins: np.ndarray, *, group: int, n_groups: int) -> slice:
    """The contiguous run of tile indices that group ``group`` of ``n_groups`` predicts.

    Parameters
    ----------
    origins : `(n, 3)` array
        All tile origins of the grid (only their number is used).
    group : int
        0-based, ``0 <= group < n_groups``.
    n_groups : int
        >= 1.

    Returns
    -------
    slice
        ``origins[slice]``: the groups partition ``range(n)`` in order; sizes differ by at
        most one (the first ``n % n_groups`` groups have one more). With more groups than
        tiles, the last groups are empty.
    """
    n_groups, group = int(n_groups), int(group)
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    if not 0 <= group < n_groups:
        raise ValueError(f"group {group} must be in [0, n_groups={n_groups})")
    n = len(origins)
    size, extra = divmod(n, n_groups)
    start = group * size + min(group, extra)
    return slice(start, start + size + (1 if group < extra else 0))


def group_tile_origins(
    shape_zyx: Sequence[int],
    *,
    tile_px: int | Sequence[int],
    overlap_px: int | Sequence[int],
    group: int,
    n_groups: int,
) -> np.ndarray:
    """Origins of the tiles of one group.

    Parameters
    ----------
    shape_zyx : (d, h, w)
        Volume shape; every axis must be >= the tile (see the module notes).
    tile_px, overlap_px : int or (z, y, x)
    group, n_groups : int
        As for :func:`tile_group`.

    Returns
    -------
    numpy.ndarray
        `(k, 3)` int64 origins, a contiguous run of the z-major grid.
    """
    shape, tile = as_zyx(shape_zyx, "shape_zyx"), as_zyx(tile_px, "tile_px")
    thin = [f"{axis} ({n} < {t})" for axis, n, t in zip("zyx", shape, tile, strict=True) if n < t]
    if thin:
        raise ValueError(
            f"the volume {shape} is thinner than the tile {tile} along {', '.join(thin)}: predicting in "
            f"separate groups of tiles (execution.predict_n_jobs > 1) needs every axis >= predict.tile_px; use "
            f"predict.tile_px <= {min(shape)} (a multiple of the model's divisor) or execution.predict_n_jobs: 1"
        )
    origins = tile_origins_3d(shape, tile_zyx=tile, overlap_zyx=overlap_px)
    return origins[tile_group(origins, group=group, n_groups=n_groups)]


def predict_tile_group(
    volume: np.ndarray,
    model: nn.Module,
    *,
    tile_px: int | Sequence[int],
    overlap_px: int | Sequence[int],
    group: int,
    n_groups: int,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    normalization: tuple[float, float] | None = None,
    keep_measured: bool = False,
    tilt_range_deg: tuple[float, float] | None = None,
    out: np.ndarray | zarr.Array | None = None,
    progress: bool = True,
) -> tuple[np.ndarray | zarr.Array, np.ndarray]:
    """Predict the tiles of one group, unblended.

    Parameters
    ----------
    volume : `(d, h, w)` float array or ``np.memmap``
        The whole tomogram (read one tile at a time); every axis >= the tile.
    model, tile_px, overlap_px, batch_size, device, keep_measured, tilt_range_deg, progress
        As for :func:`cryo_pipeline.inference.tiled.predict_tiled`.
    group, n_groups : int
        Which group (:func:`tile_group`).
    normalization : (mean, std), optional
        As for ``predict_tiled``; if None the statistics of the **whole** volume are
        computed (every group gets the same), never those of the group's tiles.
    out : `(k, tz, ty, tx)` float32 array or ``zarr.Array``, optional
        Where to write the tiles, batch by batch (e.g. a store from
        :func:`cryo_pipeline.io.tile_store.create_tile_store`: memory then stays at one
        batch); a new in-memory array if None.

    Returns
    -------
    tiles : `(k, tz, ty, tx)` float32 array or ``zarr.Array``
        The de-normalised predictions (``out`` itself when given); ``k`` may be 0.
    origins : `(k, 3)` int64
        Their origins (see :func:`group_tile_origins`).
    """
    plan = plan_tiles(volume, model, tile_px=tile_px, overlap_px=overlap_px)
    origins = group_tile_origins(plan.shape, tile_px=plan.tile, overlap_px=overlap_px, group=group,
                                 n_groups=n_groups)
    expected = (len(origins), *plan.tile)
    if out is None:
        out = np.zeros(expected, dtype=np.float32)
    elif tuple(out.shape) != expected or np.dtype(out.dtype) != np.float32:
        raise ValueError(f"out must be float32 of shape {expected} (this group's tiles), "
                         f"got {out.dtype} {tuple(out.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    mean, std = resolve_normalization(volume, normalization)
    start = 0
    for batch_origins, preds in predict_tile_batches(
        volume, model, origins, plan, batch_size=batch_size, device=device, mean=mean, std=std,
        keep_measured=keep_measured, tilt_range_deg=tilt_range_deg, progress=progress,
    ):
        out[start : start + len(batch_origins)] = preds
        start += len(batch_origins)
    return out, origins
