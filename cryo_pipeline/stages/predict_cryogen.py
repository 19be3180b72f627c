"""Stage ``predict_cryogen``: tiled, overlapping, blended inference with a trained generator.

:func:`run` predicts and blends the whole tomogram in one job. :func:`run_tile_group`
(command ``predict-cryogen-tiles``) predicts one of ``n_groups`` groups of tiles into a
tile store, for the split mode (``execution.predict_n_jobs > 1``); ``stitch-tiles``
(:mod:`cryo_pipeline.stages.stitch_tiles`) then blends the groups with Dask.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import PredictConfig
from cryo_pipeline.inference.tile_groups import group_tile_origins, predict_tile_group
from cryo_pipeline.inference.tiled import predict_tiled_to_zarr
from cryo_pipeline.io.model_files import load_generator_file
from cryo_pipeline.io.mrc import read_mrc_memmap
from cryo_pipeline.io.stage_records import meta_path_for, read_stage_meta, stage_outputs, write_stage_meta
from cryo_pipeline.io.tile_store import create_tile_store
from cryo_pipeline.io.volume_outputs import copy_zarr_to_mrc_and_ome_zarr, ome_zarr_path_for
from cryo_pipeline.io.zarr_store import open_volume_zarr
from cryo_pipeline.models import UNetPlusPlus3d
from cryo_pipeline.training.devices import resolve_device

log = logging.getLogger(__name__)
_SLAB_Z = 16


def _check_tilt_range(state: dict, model_path: Path, dataset: DatasetRow) -> tuple[float, float]:
    """The row's tilt range (the dataset's one source of truth), which the model must have been trained for."""
    return dataset.tilt_range_matching(tuple(state["tilt_range_deg"]), recorded_in=f"{model_path} was trained for",
                                       fix="retrain (rerun train_cryogen) or correct the sheet")


def _check_tile(cfg: PredictConfig, model: UNetPlusPlus3d, model_path: Path) -> None:
    if cfg.tile_px % model.divisor:
        raise ValueError(
            f"predict.tile_px ({cfg.tile_px}) is not divisible by {model.divisor} (= 2**depth of the model "
            f"in {model_path}); use {cfg.tile_px // model.divisor * model.divisor or model.divisor}"
        )


@reads("predict_cryogen")
def run(*, tomogram_path: Path, model_path: Path, dataset: DatasetRow, cfg: PredictConfig, out: Path,
        out_zarr: Path, device: str = "auto") -> None:
    """Correct ``tomogram_path`` with the model; write a Zarr store (streamed) and an MRC copy.

    ``device`` is ``execution.device`` (``auto``: CUDA when available). The model must have been
    trained for the row's tilt range (else a ``ValueError`` names both).
    """
    device = resolve_device(device)
    model, state = load_generator_file(model_path, device=device)
    tilt_range = _check_tilt_range(state, model_path, dataset)
    _check_tile(cfg, model, model_path)
    if device.type == "cuda":  # stop before the first tile if tile/batch cannot fit, suggesting ones that do
        from cryo_pipeline.training.memory import check_prediction_memory, free_cuda_bytes

        check_prediction_memory(cfg, free_cuda_bytes(device), **state["architecture"])
    tomogram, voxel_size = read_mrc_memmap(Path(tomogram_path), voxel_size_angstrom=dataset.voxel_size_angstrom)
    start = time.perf_counter()
    with stage_outputs(out_zarr, out, ome_zarr_path_for(out), meta_path_for(out)) as (
            tmp_zarr, tmp_mrc, tmp_ome, tmp_meta):
        predict_tiled_to_zarr(
            tomogram, model, tmp_zarr, voxel_size_angstrom=voxel_size, tile_px=cfg.tile_px,
            overlap_px=cfg.overlap_px, batch_size=cfg.batch_size, device=device,
            normalization=tuple(state["normalization"]), keep_measured=cfg.keep_measured,
            tilt_range_deg=tilt_range,
        )
        predict_s = time.perf_counter() - start
        corrected = open_volume_zarr(tmp_zarr)
        copy_zarr_to_mrc_and_ome_zarr(corrected, tmp_mrc, tmp_ome, voxel_size_angstrom=voxel_size, step_z=_SLAB_Z,
                                      labels=[f"cryo_pipeline {state['method']} prediction"],
                                      attributes={"stage": "predict_cryogen", "method": state["method"]})
        train_s = float(read_stage_meta(meta_path_for(Path(model_path))).get("runtime_s", 0.0))
        log.info("%s prediction of %s %s in %.1f s (training took %.1f s)", state["method"], dataset.dataset,
                 tuple(corrected.shape), predict_s, train_s)
        write_stage_meta(tmp_meta, stage="predict_cryogen", config=cfg, dataset=dataset,
                         runtime_s=train_s + predict_s, device=str(device),
                         extra={"method": state["method"], "train_s": train_s, "predict_s": predict_s,
                                "model": str(model_path)})


@reads("predict_cryogen_tiles")
def run_tile_group(*, tomogram_path: Path, model_path: Path, dataset: DatasetRow, cfg: PredictConfig, group: int,
                   n_groups: int, out_tiles: Path, device: str = "auto") -> None:
    """Predict group ``group`` of ``n_groups`` of the tomogram's tiles into a tile store (unblended).

    Writes ``out_tiles`` (:mod:`cryo_pipeline.io.tile_store`, streamed batch by batch)
    and its record ``out_tiles`` with suffix ``.json`` (``predict_s`` of this group,
    ``train_s`` from the model's record, ``runtime_s`` = their sum as for :func:`run`).
    Every axis of the tomogram must be >= ``cfg.tile_px`` (see
    :mod:`cryo_pipeline.inference.tile_groups`).
    """
    device = resolve_device(device)
    model, state = load_generator_file(model_path, device=device)
    tilt_range = _check_tilt_range(state, model_path, dataset)
    _check_tile(cfg, model, model_path)
    tomogram, voxel_size = read_mrc_memmap(Path(tomogram_path), voxel_size_angstrom=dataset.voxel_size_angstrom)
    origins = group_tile_origins(tomogram.shape, tile_px=cfg.tile_px, overlap_px=cfg.overlap_px, group=group,
                                 n_groups=n_groups)
    if len(origins) == 0:
        log.warning("group %d of %d has no tiles (the tomogram %s has fewer tiles than groups); writing an empty "
                    "tile store", group, n_groups, tuple(tomogram.shape))
    start = time.perf_counter()
    with stage_outputs(out_tiles, meta_path_for(out_tiles)) as (tmp_tiles, tmp_meta):
        store = create_tile_store(tmp_tiles, origins=origins, volume_shape_zyx=tomogram.shape, tile_px=cfg.tile_px,
                                  overlap_px=cfg.overlap_px, voxel_size_angstrom=voxel_size, group=group,
                                  n_groups=n_groups, tilt_min_deg=tilt_range[0], tilt_max_deg=tilt_range[1])
        predict_tile_group(tomogram, model, tile_px=cfg.tile_px, overlap_px=cfg.overlap_px, group=group,
                           n_groups=n_groups, batch_size=cfg.batch_size, device=device,
                           normalization=tuple(state["normalization"]), keep_measured=cfg.keep_measured,
                           tilt_range_deg=tilt_range, out=store)
        predict_s = time.perf_counter() - start
        train_s = float(read_stage_meta(meta_path_for(Path(model_path))).get("runtime_s", 0.0))
        log.info("%s prediction of %d tiles (group %d of %d) of %s %s in %.1f s", state["method"], len(origins),
                 group, n_groups, dataset.dataset, tuple(tomogram.shape), predict_s)
        write_stage_meta(tmp_meta, stage="predict_cryogen_tiles", config=cfg, dataset=dataset,
                         runtime_s=train_s + predict_s, device=str(device),
                         extra={"method": state["method"], "train_s": train_s, "predict_s": predict_s,
                                "model": str(model_path), "group": int(group), "n_groups": int(n_groups),
                                "n_tiles": len(origins)})
