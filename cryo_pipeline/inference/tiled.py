"""Tiled, batched, blended inference of a volume-to-volume network over a whole tomogram.

The tomogram is cut into overlapping tiles on the grid of
:func:`cryo_pipeline.ops.blending.tile_origins_3d`, each tile is normalised with the
statistics of the **whole** tomogram (never per tile: per-tile statistics are what
give IsoNet its patch seams), predicted in batches, de-normalised and pushed into a
:class:`~cryo_pipeline.ops.blending.BlendAccumulator`, which weights it with the
shared raised-cosine window and finally divides by the summed weights (a constant
volume through an identity model comes back exactly). The accumulator touches one
tile region at a time, so with ``out`` a ``np.memmap`` or ``zarr.Array`` and the input
a memory map, memory does not grow with the tomogram.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import zarr
from torch import nn

from cryo_pipeline.inference.tile_core import (
    plan_tiles,
    predict_tile_batches,
    resolve_normalization,
    volume_statistics,
)
from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.zarr_store import create_volume_zarr
from cryo_pipeline.ops.blending import BlendAccumulator

__all__ = ["predict_tiled", "predict_tiled_to_zarr", "volume_statistics"]


def predict_tiled(
    volume: np.ndarray,
    model: nn.Module,
    *,
    tile_px: int | Sequence[int],
    overlap_px: int | Sequence[int],
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    normalization: tuple[float, float] | None = None,
    keep_measured: bool = False,
    tilt_range_deg: tuple[float, float] | None = None,
    out: np.ndarray | zarr.Array | None = None,
    progress: bool = True,
) -> np.ndarray | zarr.Array:
    """Predict a whole tomogram tile by tile and blend the tiles.

    Parameters
    ----------
    volume : `(d, h, w)` float array or ``np.memmap``
        The tomogram; read one tile at a time.
    model : nn.Module
        `(b, 1, tz, ty, tx)` → `(b, 1, tz, ty, tx)`, already on ``device``. If it has a
        ``divisor`` attribute (e.g. :class:`~cryo_pipeline.models.UNetPlusPlus3d`), every
        tile size must be a multiple of it. Put in eval mode during the call, restored after.
    tile_px : int or (z, y, x)
        Tile size fed to the model.
    overlap_px : int or (z, y, x)
        Overlap of neighbouring tiles (the window's ramp length), ``0 <= overlap < tile``.
    batch_size : int
        Tiles per forward pass.
    device : str or torch.device
        Where the tiles are predicted; on CUDA under bf16 autocast.
    normalization : (mean, std), optional
        Whole-tomogram statistics (e.g. from the subtomogram store the model was trained
        on); computed from ``volume`` in slabs if None (std 0 is replaced by 1). Tiles
        are fed as ``(tile - mean) / std`` and the prediction mapped back with
        ``pred · std + mean``.
    keep_measured : bool
        Data consistency per tile: ``pred + ifft(M · fft(tile - pred))`` with ``M`` the
        missing-wedge mask of the tile shape, i.e. the measured Fourier region is the
        input's and only the missing wedge comes from the model. This is a local
        approximation (per tile, before blending) of the global operation on the whole
        tomogram, which would need the full volume's FFT; it streams.
    tilt_range_deg : (min, max), optional
        Tilt range in degrees; required with ``keep_measured``.
    out : `(d, h, w)` float32 array, ``np.memmap`` or ``zarr.Array``, optional
        Output to accumulate into (overwritten); a new in-memory array if None.
    progress : bool
        Show a tqdm bar over tiles on stderr.

    Returns
    -------
    numpy.ndarray or zarr.Array
        `(d, h, w)` float32 blended prediction (``out`` itself when given).

    Notes
    -----
    An axis shorter than its tile is reflect-padded (centred) to the tile size, tile by
    tile, and the prediction cropped back, so only that axis is padded and the volume
    is never copied as a whole.
    """
    plan = plan_tiles(volume, model, tile_px=tile_px, overlap_px=overlap_px)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    mean, std = resolve_normalization(volume, normalization)
    acc = BlendAccumulator(plan.shape, tile_zyx=plan.eff_tile, overlap_zyx=plan.eff_overlap, out=out)
    for batch_origins, preds in predict_tile_batches(
        volume, model, acc.origins, plan, batch_size=batch_size, device=device, mean=mean, std=std,
        keep_measured=keep_measured, tilt_range_deg=tilt_range_deg, progress=progress,
    ):
        for o, p in zip(batch_origins, preds, strict=True):
            acc.add(p, o)
    return acc.finalize()


def predict_tiled_to_zarr(
    volume: np.ndarray,
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    voxel_size_angstrom: float,
    tile_px: int | Sequence[int],
    overlap_px: int | Sequence[int],
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    normalization: tuple[float, float] | None = None,
    keep_measured: bool = False,
    tilt_range_deg: tuple[float, float] | None = None,
    chunks: Sequence[int] = (64, 64, 64),
    provenance: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> None:
    """Run :func:`predict_tiled` straight into a new Zarr v3 volume store, atomically.

    Parameters
    ----------
    volume, model, tile_px, overlap_px, batch_size, device, normalization, keep_measured,
    tilt_range_deg, progress
        As for :func:`predict_tiled`.
    path : path-like
        Output store; appears under this name only once complete (an existing one is replaced).
    voxel_size_angstrom : float
        Stored in the attributes (with ``tilt_min_deg``/``tilt_max_deg`` when
        ``tilt_range_deg`` is given).
    chunks, provenance, extra_attrs
        As for :func:`cryo_pipeline.io.zarr_store.create_volume_zarr`.
    """
    tilt_min, tilt_max = (None, None) if tilt_range_deg is None else (float(v) for v in tilt_range_deg)
    with atomic_write_path(path) as tmp:
        store = create_volume_zarr(tmp, volume.shape, chunks=chunks, voxel_size_angstrom=voxel_size_angstrom,
                                   tilt_min_deg=tilt_min, tilt_max_deg=tilt_max, provenance=provenance,
                                   extra_attrs=extra_attrs)
        predict_tiled(volume, model, tile_px=tile_px, overlap_px=overlap_px, batch_size=batch_size, device=device,
                      normalization=normalization, keep_measured=keep_measured, tilt_range_deg=tilt_range_deg,
                      out=store, progress=progress)
