"""Stages ``fit_slab_seed`` and ``fit_slab``: fit one coordinate network per y-slab.

``fit_slab_seed`` fits one network from random initialisation (``cn.seed_*`` schedule)
on rows drawn from the whole height (``cn.seed_window: volume``) or on the middle slab's
window (``slab``, the paper's), and writes its weights and its Adam state. ``fit_slab``
fits slab ``i``'s window starting from given weights (the seed's, or in ``chain`` mode its
neighbour's) with the ``cn.slab_*`` schedule (``cn.slab_rows_per_step`` rows per step); with
``cn.slab_optimizer: continue`` it also carries on the seed's Adam moments, so a slab is the
seed's fit continued on its own rows (every slab starts where one whole-volume network would
be). It writes

* the window's volume as a one-tile store (:mod:`cryo_pipeline.io.tile_store`; tile
  ``(d, T, w)`` at ``(0, origin_i, 0)``, blending ramp ``2h`` in y, the plan's window
  origins as the grid) for the Dask stitcher,
* its weights (the next slab's start in ``chain`` mode), and a JSON record.

A plan of one slab (``cn.slab_px: all``, or a volume no taller than one slab) is one
network on the whole volume: the seed fits all rows, slab 0 continues it, no halo.
Whether the output is non-negative is the plan's (``cn.nonnegative: auto`` decided there).
With ``cn.keep_measured`` each slab's volume gets the measured Fourier region of its rows'
weighted back-projection (:mod:`cryo_pipeline.ops.data_consistency`; per row, so the
stitched blend is consistent too).

Each job reads only its window's rows of the tilt series (memory-mapped), so jobs are
independent and small. Every loss is divided by the whole tilt series' rms (the plan's),
so slabs and seed share one loss scale. Times for the run's critical path: ``train_s`` =
the seed fit, ``predict_s`` = this slab's fit (plus its ancestors' in ``chain`` mode).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.methods import CN
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import CnConfig
from cryo_pipeline.io.model_files import build_siren, load_siren_weights, save_siren_weights
from cryo_pipeline.io.mrc import read_mrc_memmap
from cryo_pipeline.io.provenance import provenance_record
from cryo_pipeline.io.slab_plan import SlabPlanRecord, read_slab_plan
from cryo_pipeline.io.stage_records import meta_path_for, read_stage_meta, stage_outputs, write_stage_meta
from cryo_pipeline.io.tile_store import write_tile_store
from cryo_pipeline.ops.data_consistency import keep_measured_region
from cryo_pipeline.ops.projector import ParallelBeamProjector
from cryo_pipeline.ops.wbp import weighted_backprojection_3d
from cryo_pipeline.training.cn_fit import FitSettings, evaluate_window, fit_window
from cryo_pipeline.training.devices import resolve_device

log = logging.getLogger(__name__)

__all__ = ["run_seed", "run_slab"]


def _window_rows(tilt_series_path: Path, record: SlabPlanRecord, window: tuple[int, int],
                 device: torch.device) -> torch.Tensor:
    series, _ = read_mrc_memmap(Path(tilt_series_path), voxel_size_angstrom=record.voxel_size_angstrom)
    n_images, height, width = series.shape
    d, h, w = record.volume_shape_zyx
    if (height, width) != (h, w) or max(record.tilt_indices) >= n_images:
        raise ValueError(f"{tilt_series_path}: shape {tuple(series.shape)} does not match the slab plan (height {h}, "
                         f"width {w}, {len(record.tilt_indices)} tilts); rerun plan_slabs")
    rows = np.ascontiguousarray(series[list(record.tilt_indices), window[0]:window[1], :], dtype=np.float32)
    if not np.all(np.isfinite(rows)):
        raise ValueError(f"{tilt_series_path}: rows {window[0]}..{window[1]} hold NaN/Inf pixels")
    return torch.from_numpy(rows).to(device)


def _fit(tilt_series_path: Path, record: SlabPlanRecord, cfg: CnConfig, index: int | None,
         settings: FitSettings, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
         desc: str) -> tuple[list[float], tuple[int, int]]:
    """Fit slab ``index``'s window (None = all rows of the volume)."""
    plan = record.plan
    window = plan.window(index) if index is not None else (0, plan.height_px)
    measured = _window_rows(tilt_series_path, record, window, device)
    shape = record.volume_shape_zyx
    projector = ParallelBeamProjector(shape, list(record.angles_deg), device=device)
    torch.manual_seed(cfg.seed + (index or 0))
    history = fit_window(model, measured, projector, volume_shape_zyx=shape, window_y=window, settings=settings,
                         scale=record.value_scale, desc=desc, optimizer=optimizer,
                         loss_rms=record.tilt_series_rms)
    return history, window


def _decided(cfg: CnConfig, record: SlabPlanRecord, plan_path: Path) -> CnConfig:
    """``cfg`` with ``nonnegative`` as the plan decided it (``auto``); an explicit value must agree."""
    if cfg.nonnegative == "auto":
        return cfg.model_copy(update={"nonnegative": record.nonnegative})
    if cfg.nonnegative != record.nonnegative:
        raise ValueError(f"{plan_path}: planned with nonnegative {record.nonnegative}, but cn.nonnegative is "
                         f"{cfg.nonnegative}; rerun plan_slabs with this config")
    return cfg


def _optimizer(model: torch.nn.Module, lr: float, state: dict | None, path: Path | None = None) -> torch.optim.Adam:
    """Adam over ``model``; with ``state`` (a saved one) its moments carry on."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if state is not None:
        try:
            optimizer.load_state_dict(state)
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: the saved optimiser state does not fit this network ({error}); rerun "
                             "fit_slab_seed, or set cn.slab_optimizer: restart") from None
    return optimizer


@reads("fit_slab_seed")
def run_seed(*, tilt_series_path: Path, plan_path: Path, dataset: DatasetRow, cfg: CnConfig, out_model: Path,
             device: str = "auto") -> None:
    """Fit the seed network from random initialisation (the middle slab, or rows of the whole volume).

    ``device`` is ``execution.device`` (``auto``: CUDA when available).
    """
    device = resolve_device(device)
    record = read_slab_plan(plan_path)
    cfg = _decided(cfg, record, Path(plan_path))
    plan = record.plan
    index = plan.seed_index()
    settings = FitSettings(cfg.seed_iterations, cfg.seed_lr_start, cfg.seed_lr_end, loss=cfg.loss,
                           tv_weight=cfg.tv_weight, rows_per_step=cfg.rows_per_step, seed=cfg.seed)
    start = time.perf_counter()
    model = build_siren(cfg).to(device)
    optimizer = _optimizer(model, cfg.seed_lr_start, None)
    whole = cfg.seed_window == "volume" or plan.n_slabs == 1
    history, window = _fit(tilt_series_path, record, cfg, None if whole else index, settings, model, optimizer,
                           device, "seed (whole volume)" if whole else f"seed slab {index}")
    runtime = time.perf_counter() - start
    log.info("%s: seed network (rows %d..%d%s) fitted in %.1f s on %s, loss %.4g -> %.4g", dataset.dataset, *window,
             ", drawn from the whole height" if whole and plan.n_slabs > 1 else "", runtime, device, history[0],
             history[-1])
    with stage_outputs(Path(out_model), meta_path_for(Path(out_model))) as (tmp_model, tmp_meta):
        save_siren_weights(tmp_model, model, cfg, slab=index, chain_s=0.0, optimizer=optimizer)
        write_stage_meta(tmp_meta, stage="fit_slab_seed", config=cfg, dataset=dataset, runtime_s=runtime,
                         device=str(device), extra={"slab": index, "window_y": list(window),
                                                    "loss_first": history[0], "loss_last": history[-1]})


@reads("fit_slab")
def run_slab(*, tilt_series_path: Path, plan_path: Path, init_model: Path, seed_meta: Path | None, slab: int,
             dataset: DatasetRow, cfg: CnConfig, out_tiles: Path, out_model: Path, device: str = "auto") -> None:
    """Fit slab ``slab`` from ``init_model``; write its tile store, weights and record.

    ``device`` is ``execution.device`` (``auto``: CUDA when available).
    """
    device = resolve_device(device)
    record = read_slab_plan(plan_path)
    cfg = _decided(cfg, record, Path(plan_path))
    plan = record.plan
    if not 0 <= slab < plan.n_slabs:
        raise ValueError(f"slab {slab} is outside the plan's 0..{plan.n_slabs - 1} ({plan_path})")
    model, state = load_siren_weights(init_model, cfg, device)
    carry_on = cfg.slab_optimizer == "continue"
    if carry_on and "optimizer" not in state:
        raise ValueError(f"{init_model}: holds no optimiser state (written by an older version?); rerun "
                         "fit_slab_seed, or set cn.slab_optimizer: restart")
    optimizer = _optimizer(model, cfg.slab_lr_start, state["optimizer"] if carry_on else None, Path(init_model))
    settings = FitSettings(cfg.slab_iterations, cfg.slab_lr_start, cfg.slab_lr_end, loss=cfg.loss,
                           tv_weight=cfg.tv_weight, rows_per_step=cfg.slab_fit_rows_per_step, seed=cfg.seed + 1 + slab)
    start = time.perf_counter()
    try:
        history, window = _fit(tilt_series_path, record, cfg, slab, settings, model, optimizer, device,
                               f"slab {slab}")
    except FloatingPointError as error:  # name the stage, the key to change and the last good weights
        raise FloatingPointError(f"fit_slab {slab} of {dataset.dataset} diverged: {error} (cn.slab_lr_start = "
                                 f"{cfg.slab_lr_start}); nothing was written; last good weights: the initial ones, "
                                 f"{init_model}") from None
    shape = record.volume_shape_zyx
    tile = evaluate_window(model, volume_shape_zyx=shape, window_y=window, scale=record.value_scale, device=device)
    if cfg.keep_measured:  # the rows' WBP on the acquired tilts' Fourier planes (rows are independent)
        rows = _window_rows(tilt_series_path, record, window, torch.device("cpu"))
        wbp = weighted_backprojection_3d(rows, list(record.angles_deg), volume_shape_zyx=tile.shape).numpy()
        tile = keep_measured_region(tile, wbp, record.angles_deg)
    runtime = time.perf_counter() - start
    seed_record = read_stage_meta(None if seed_meta is None else Path(seed_meta))
    chain_s = float(state.get("chain_s", 0.0)) + runtime
    log.info("%s: slab %d/%d (rows %d..%d) fitted in %.1f s on %s, loss %.4g -> %.4g", dataset.dataset, slab,
             plan.n_slabs, *window, runtime, device, history[0], history[-1])
    tilt_range = record.tilt_range_deg
    with stage_outputs(Path(out_tiles), Path(out_model), meta_path_for(Path(out_model))) as (tmp_tiles, tmp_model,
                                                                                          tmp_meta):
        write_tile_store(tmp_tiles, tile[None], np.array([[0, window[0], 0]]), volume_shape_zyx=shape,
                         tile_px=tile.shape, overlap_px=(0, plan.blend_overlap_px, 0),
                         voxel_size_angstrom=record.voxel_size_angstrom, group=slab, n_groups=plan.n_slabs,
                         tilt_min_deg=tilt_range[0], tilt_max_deg=tilt_range[1],
                         provenance=provenance_record(config=cfg.model_dump(mode="json")),
                         grid_origins_zyx=[[0], list(plan.origins_y), [0]], chunk_px=(64, plan.window_px, shape[2]),
                         extra_attrs={"slab_boundaries_y": list(plan.boundaries_y)})
        save_siren_weights(tmp_model, model, cfg, slab=slab, chain_s=chain_s if cfg.schedule == "chain" else runtime,
                           optimizer=optimizer)
        write_stage_meta(tmp_meta, stage="fit_slab", config=cfg, dataset=dataset, runtime_s=runtime,
                         device=str(device),
                         extra={"method": CN, "slab": slab, "window_y": list(window), "loss_first": history[0],
                                "loss_last": history[-1], "train_s": float(seed_record.get("runtime_s", 0.0)),
                                "predict_s": chain_s if cfg.schedule == "chain" else runtime,
                                "slab_boundaries_y": list(plan.boundaries_y), "init_model": str(init_model)})
