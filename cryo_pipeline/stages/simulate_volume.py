"""Stage ``simulate_volume``: the ground-truth volume of a synthetic dataset."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import SimulateConfig
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.ops.phantoms import make_phantom, rotated_map
from cryo_pipeline.stages.outputs import meta_path_for, write_stage_meta

log = logging.getLogger(__name__)


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
            low, high = float(volume.min()), float(volume.max())
            if high <= low:
                raise ValueError(f"map {dataset.source} is constant ({low}); it cannot serve as ground truth")
            volume = (volume - low) / (high - low)
        log.info("map %s %s voxels at %.3f A", dataset.source, volume.shape, voxel_size)
    volume = np.ascontiguousarray(volume, dtype=np.float32)
    runtime = time.perf_counter() - start
    write_mrc(out, volume, voxel_size_angstrom=voxel_size, labels=[f"cryo_pipeline ground truth {dataset.dataset}"])
    write_stage_meta(meta_path_for(out), stage="simulate_volume", config=cfg, dataset=dataset, runtime_s=runtime)
