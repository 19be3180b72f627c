"""The per-batch core shared by the tiled predictors (whole volume or one group of tiles).

:func:`plan_tiles` checks a volume, tile size and overlap against a model and says how
tiles are cut (an axis thinner than the tile is one reflect-padded tile);
:func:`predict_tile_batches` reads, normalises (whole-tomogram statistics, never per
tile), predicts, optionally makes data-consistent, de-normalises and crops the tiles at
given origins, one batch at a time. :func:`cryo_pipeline.inference.tiled.predict_tiled`
blends what it yields; :func:`cryo_pipeline.inference.tile_groups.predict_tile_group`
stores it unblended.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cryo_pipeline.models.unetpp import check_divisible
from cryo_pipeline.ops.blending import as_zyx, release_pages, slab_ranges
from cryo_pipeline.ops.wedge import missing_wedge_mask_3d

__all__ = ["TilePlan", "plan_tiles", "predict_tile_batches", "resolve_normalization", "volume_statistics"]


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


def resolve_normalization(volume: np.ndarray, normalization: tuple[float, float] | None) -> tuple[float, float]:
    """``(mean, std)`` to normalise tiles with: the given pair (checked), or the volume's own statistics.

    Parameters
    ----------
    volume : `(d, h, w)` array or ``np.memmap``
        Read in slabs when ``normalization`` is None.
    normalization : (mean, std), optional
        Must be finite with std > 0. If None, :func:`volume_statistics` of ``volume``
        (a std of 0, i.e. a constant volume, becomes 1: only shift it).
    """
    if normalization is None:
        mean, std = volume_statistics(volume)
        if not np.isfinite(mean) or not np.isfinite(std):
            raise ValueError(f"volume statistics are not finite (mean {mean}, std {std}); the volume has NaN/inf")
        return mean, (std if std > 0 else 1.0)  # a constant volume: only shift it
    mean, std = (float(v) for v in normalization)
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ValueError(f"normalization (mean, std) must be finite with std > 0, got {normalization!r}")
    return mean, std


@dataclass(frozen=True)
class TilePlan:
    """How a volume is cut into model-sized tiles.

    Attributes
    ----------
    shape : (d, h, w)
        Volume shape.
    tile : (z, y, x)
        Tile size fed to the model.
    eff_tile, eff_overlap : (z, y, x)
        Tile extent and overlap in the volume: ``tile``/``overlap``, except on an axis
        thinner than the tile, where one tile spans the axis (overlap 0) and is
        reflect-padded (centred) to ``tile``.
    pads : ((before, after),) * 3
        Padding from ``eff_tile`` to ``tile``.
    """

    shape: tuple[int, int, int]
    tile: tuple[int, int, int]
    eff_tile: tuple[int, int, int]
    eff_overlap: tuple[int, int, int]
    pads: tuple[tuple[int, int], ...]

    @property
    def padded(self) -> bool:
        """True if some axis is thinner than the tile."""
        return any(a or b for a, b in self.pads)

    @property
    def crop(self) -> tuple[slice, ...]:
        """Slices of a `tile` prediction that lie inside the volume (`eff_tile` shaped)."""
        return tuple(slice(a, a + e) for (a, _), e in zip(self.pads, self.eff_tile, strict=True))


def plan_tiles(volume: np.ndarray, model: nn.Module, *, tile_px: int | Sequence[int],
               overlap_px: int | Sequence[int]) -> TilePlan:
    """Check the volume, tile and overlap against the model; return the :class:`TilePlan`.

    Parameters
    ----------
    volume : `(d, h, w)` array
    model : nn.Module
        Its ``divisor`` attribute (default 1) must divide every tile size.
    tile_px, overlap_px : int or (z, y, x)
        As for :func:`predict_tiled`.
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
    eff_tile = tuple(min(t, n) for t, n in zip(tile, shape, strict=True))
    eff_overlap = tuple(o if t <= n else 0 for o, t, n in zip(overlap, tile, shape, strict=True))
    pads = tuple(((t - e) // 2, t - e - (t - e) // 2) for t, e in zip(tile, eff_tile, strict=True))
    return TilePlan(shape, tile, eff_tile, eff_overlap, pads)  # type: ignore[arg-type]


def predict_tile_batches(
    volume: np.ndarray,
    model: nn.Module,
    origins: np.ndarray,
    plan: TilePlan,
    *,
    batch_size: int,
    device: str | torch.device,
    mean: float,
    std: float,
    keep_measured: bool = False,
    tilt_range_deg: tuple[float, float] | None = None,
    progress: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Predict the tiles at ``origins`` batch by batch: the core shared by every tiled predictor.

    Each tile is read from ``volume``, padded per ``plan``, fed as ``(tile - mean) / std``,
    optionally made data-consistent (``keep_measured``, see :func:`predict_tiled`), mapped
    back with ``pred · std + mean`` and cropped to ``plan.eff_tile``. Arguments are
    checked here, before the first batch; the model is in eval mode while batches are
    produced and its mode is restored when the iterator is exhausted or closed.

    Parameters
    ----------
    volume : `(d, h, w)` array or ``np.memmap``
    model : nn.Module
        On ``device``.
    origins : `(n, 3)` int array
        Tile origins in the volume (extent ``plan.eff_tile``).
    plan : TilePlan
        From :func:`plan_tiles`.
    batch_size, device, keep_measured, tilt_range_deg, progress
        As for :func:`predict_tiled`.
    mean, std : float
        Normalisation (:func:`resolve_normalization`).

    Yields
    ------
    (batch_origins, predictions) : `(b, 3)` int64, `(b, *plan.eff_tile)` float32
        In the order of ``origins``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    _model_device_check(model, device)
    mask = None
    if keep_measured:
        if tilt_range_deg is None:
            raise ValueError("keep_measured=True needs tilt_range_deg=(tilt_min_deg, tilt_max_deg)")
        full = missing_wedge_mask_3d(plan.tile, tilt_min_deg=float(tilt_range_deg[0]),
                                     tilt_max_deg=float(tilt_range_deg[1]))
        mask = torch.from_numpy(np.ascontiguousarray(full[..., : plan.tile[2] // 2 + 1])).to(device)  # rfft half
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 3)
    return _tile_batches(volume, model, origins, plan, batch_size=batch_size, device=device, mean=mean, std=std,
                         mask=mask, progress=progress)


def _tile_batches(volume, model, origins, plan, *, batch_size, device, mean, std, mask, progress):
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext())
    was_training = model.training
    model.eval()
    try:
        with tqdm(total=len(origins), desc="predict tiles", unit="tile", file=sys.stderr,
                  disable=not progress) as bar:
            for start in range(0, len(origins), batch_size):
                batch_origins = origins[start : start + batch_size]
                tiles = []
                for o in batch_origins:
                    region = tuple(slice(int(a), int(a) + e) for a, e in zip(o, plan.eff_tile, strict=True))
                    t = np.asarray(volume[region], dtype=np.float32)
                    tiles.append(np.pad(t, plan.pads, mode="reflect") if plan.padded else t)
                release_pages(volume)
                with torch.inference_mode():
                    x = torch.from_numpy(np.stack(tiles)[:, None]).to(device)
                    x = (x - mean) / std
                    with autocast:
                        pred = model(x)
                    pred = pred.float()
                    if tuple(pred.shape) != tuple(x.shape):
                        raise ValueError(f"model returned shape {tuple(pred.shape)} for input {tuple(x.shape)}")
                    if mask is not None:
                        diff = torch.fft.rfftn(x - pred, dim=(-3, -2, -1))
                        pred = pred + torch.fft.irfftn(diff * mask, s=plan.tile, dim=(-3, -2, -1))
                    pred = (pred * std + mean)[:, 0].cpu().numpy()
                bar.update(len(batch_origins))
                yield batch_origins, (pred[(slice(None), *plan.crop)] if plan.padded else pred)
    finally:
        model.train(was_training)


def _model_device_check(model: nn.Module, device: torch.device) -> None:
    param = next(model.parameters(), None)
    if param is not None and param.device.type != device.type:
        raise ValueError(f"model parameters are on {param.device} but device={device}; "
                         f"move the model first (model.to({str(device)!r}))")
