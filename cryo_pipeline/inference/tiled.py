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

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import zarr
from torch import nn
from tqdm import tqdm

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.io.zarr_store import create_volume_zarr
from cryo_pipeline.models.unetpp import check_divisible
from cryo_pipeline.ops.blending import BlendAccumulator, as_zyx, release_pages, slab_ranges
from cryo_pipeline.ops.wedge import missing_wedge_mask_3d

__all__ = ["predict_tiled", "predict_tiled_to_zarr", "volume_statistics"]


def volume_statistics(volume: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a whole volume, computed in z-slabs (float64).

    Parameters
    ----------
    volume : `(d, h, w)` array or ``np.memmap``
        Read slab by slab (pages of a memory map are released after each slab).

    Returns
    -------
    (mean, std) : tuple of float
        Population statistics; slabs are merged with Chan et al.'s pairwise update, so
        there is no cancellation for large means.
    """
    count, mean, m2 = 0, 0.0, 0.0
    for z0, z1 in slab_ranges(volume.shape[0], int(np.prod(volume.shape[1:]))):
        slab = np.asarray(volume[z0:z1], dtype=np.float64)
        n, mu = slab.size, float(slab.mean())
        s2 = float(np.square(slab - mu).sum())
        delta, total = mu - mean, count + n
        mean += delta * n / total
        m2 += s2 + delta**2 * count * n / total
        count = total
        release_pages(volume)
    return mean, float(np.sqrt(m2 / count))


def _normalization(volume: np.ndarray, normalization: tuple[float, float] | None) -> tuple[float, float]:
    if normalization is None:
        mean, std = volume_statistics(volume)
        if not np.isfinite(mean) or not np.isfinite(std):
            raise ValueError(f"volume statistics are not finite (mean {mean}, std {std}); the volume has NaN/inf")
        return mean, (std if std > 0 else 1.0)  # a constant volume: only shift it
    mean, std = (float(v) for v in normalization)
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ValueError(f"normalization (mean, std) must be finite with std > 0, got {normalization!r}")
    return mean, std


def _model_device_check(model: nn.Module, device: torch.device) -> None:
    param = next(model.parameters(), None)
    if param is not None and param.device.type != device.type:
        raise ValueError(f"model parameters are on {param.device} but device={device}; "
                         f"move the model first (model.to({str(device)!r}))")


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
    if volume.ndim != 3:
        raise ValueError(f"volume must be (d, h, w), got shape {tuple(volume.shape)}")
    shape = tuple(int(n) for n in volume.shape)
    tile, overlap = as_zyx(tile_px, "tile_px"), as_zyx(overlap_px, "overlap_px")
    if min(tile) < 1 or any(not 0 <= o < t for o, t in zip(overlap, tile, strict=True)):
        raise ValueError(f"need tile_px >= 1 and 0 <= overlap_px < tile_px, got tile {tile}, overlap {overlap}")
    divisor = int(getattr(model, "divisor", 1))
    try:
        check_divisible(tile, divisor)
    except ValueError as err:
        raise ValueError(f"tile_px {tile} does not fit the model: {err}") from None
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    _model_device_check(model, device)
    mean, std = _normalization(volume, normalization)

    # axes shorter than the tile: one tile spanning the axis, reflect-padded to `tile`
    eff_tile = tuple(min(t, n) for t, n in zip(tile, shape, strict=True))
    eff_overlap = tuple(o if t <= n else 0 for o, t, n in zip(overlap, tile, shape, strict=True))
    pads = tuple(((t - e) // 2, t - e - (t - e) // 2) for t, e in zip(tile, eff_tile, strict=True))
    crop = tuple(slice(a, a + e) for (a, _), e in zip(pads, eff_tile, strict=True))
    padded = any(a or b for a, b in pads)

    mask = None
    if keep_measured:
        if tilt_range_deg is None:
            raise ValueError("keep_measured=True needs tilt_range_deg=(tilt_min_deg, tilt_max_deg)")
        full = missing_wedge_mask_3d(tile, tilt_min_deg=float(tilt_range_deg[0]), tilt_max_deg=float(tilt_range_deg[1]))
        mask = torch.from_numpy(np.ascontiguousarray(full[..., : tile[2] // 2 + 1])).to(device)  # rfft half

    acc = BlendAccumulator(shape, tile_zyx=eff_tile, overlap_zyx=eff_overlap, out=out)
    origins = acc.origins
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext())
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(origins), desc="predict tiles", unit="tile", file=sys.stderr,
                                           disable=not progress) as bar:
            for start in range(0, len(origins), batch_size):
                batch_origins = origins[start : start + batch_size]
                tiles = []
                for o in batch_origins:
                    region = tuple(slice(int(a), int(a) + e) for a, e in zip(o, eff_tile, strict=True))
                    t = np.asarray(volume[region], dtype=np.float32)
                    tiles.append(np.pad(t, pads, mode="reflect") if padded else t)
                release_pages(volume)
                x = torch.from_numpy(np.stack(tiles)[:, None]).to(device)
                x = (x - mean) / std
                with autocast:
                    pred = model(x)
                pred = pred.float()
                if tuple(pred.shape) != tuple(x.shape):
                    raise ValueError(f"model returned shape {tuple(pred.shape)} for input {tuple(x.shape)}")
                if mask is not None:
                    diff = torch.fft.rfftn(x - pred, dim=(-3, -2, -1))
                    pred = pred + torch.fft.irfftn(diff * mask, s=tile, dim=(-3, -2, -1))
                pred = (pred * std + mean)[:, 0].cpu().numpy()
                for o, p in zip(batch_origins, pred, strict=True):
                    acc.add(p[crop] if padded else p, o)
                bar.update(len(batch_origins))
    finally:
        model.train(was_training)
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
