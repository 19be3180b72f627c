"""Stage ``simulate_volume``: the ground-truth volume of a synthetic dataset."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import SimulateConfig
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta
from cryo_pipeline.ops.phantoms import make_phantom, rotated_map

log = logging.getLogger(__name__)


def normalize_map(volume: np.ndarray, *, source: str) -> np.ndarray:
    """Solvent to 0, maximum to 1: subtract the median of the box's six faces, divide by the peak.

    A map's solvent must be 0 (not the 0.2–0.4 a min–max scaling leaves): a constant
    background fills the whole box, and its projections at high tilt run off the detector.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(d, h, w)`` density map.
    """
    faces = np.concatenate(
        [volume[[0, -1]].ravel(), volume[:, [0, -1]].ravel(), volume[:, :, [0, -1]].ravel()]
    )
    background = float(np.median(faces))
    peak = float(volume.max()) - background
    if peak <= 0:
        raise ValueError(f"map {source} has no density above its background ({background:g}); it cannot be ground truth")
    return (volume - background) / peak


@reads("simulate_volume")
def run(*, dataset: DatasetRow, cfg: SimulateConfig, out: Path) -> None:
    """Build the ground truth of ``dataset`` and write it to ``out`` (MRC + ``.json`` record).

    A phantom name in ``source`` builds that phantom (``shape_px`` or the paper's size);
    a path to a map reads it, optionally rotates it by a seeded random rotation and
    min–max normalises it.
    """
    if dataset.kind != "synthetic":
        raise ValueError(f"dataset {dataset.dataset}: simulate_volume needs kind 'synthetic', got {dataset.kind}")
    start = time.perf_counter()
    if dataset.is_phantom:
        volume = make_phantom(dataset.source, shape_zyx=dataset.shape_px, seed=dataset.seed)
        voxel_size = float(dataset.voxel_size_angstrom)
        log.info("phantom %s %s voxels at %.3f A", dataset.source, volume.shape, voxel_size)
    else:
        loaded = read_mrc(Path(dataset.source), voxel_size_angstrom=dataset.voxel_size_angstrom)
        volume, voxel_size = loaded.data, loaded.voxel_size_angstrom
        if cfg.map_random_rotation:
            volume = rotated_map(volume, seed=dataset.seed, order=cfg.map_interpolation_order)
        if cfg.map_normalize:
            volume = normalize_map(volume, source=dataset.source)
        log.info("map %s %s voxels at %.3f A", dataset.source, volume.shape, voxel_size)
    volume = np.ascontiguousarray(volume, dtype=np.float32)
    runtime = time.perf_counter() - start
    with stage_outputs(out, meta_path_for(out)) as (tmp_out, tmp_meta):
        label = f"cryo_pipeline ground truth {dataset.dataset}"[:80]  # MRC labels hold 80 characters
        write_mrc(tmp_out, volume, voxel_size_angstrom=voxel_size, labels=[label])
        write_stage_meta(tmp_meta, stage="simulate_volume", config=cfg, dataset=dataset, runtime_s=runtime)
