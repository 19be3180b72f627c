"""Stage ``project_tilt_series``: ground truth → noisy tilt series (the CN paper's corruption)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import ProjectConfig
from cryo_pipeline.io.angles import write_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta
from cryo_pipeline.ops.noise import add_gaussian_noise
from cryo_pipeline.ops.projector import project_3d
from cryo_pipeline.ops.projector_supersampled import project_3d_supersampled

log = logging.getLogger(__name__)


@reads("project_tilt_series")
def run(*, volume_path: Path, dataset: DatasetRow, cfg: ProjectConfig, out: Path, angles_out: Path) -> None:
    """Project ``volume_path`` at the sheet's tilt angles, add noise at the sheet's SNR.

    ``cfg.projector`` chooses the simulation model: ``supersampled`` (default, independent
    of the projector the methods invert) or ``footprint`` (the methods' own: inverse crime).

    Writes the tilt series ``(n_tilts, h, n_det)`` to ``out`` (MRC, same voxel size) and
    the angles to ``angles_out`` (``.tlt``, one per line).
    """
    if dataset.tilt_step_deg is None:
        raise ValueError(f"dataset {dataset.dataset}: project_tilt_series needs tilt_step_deg in the sheet")
    loaded = read_mrc(Path(volume_path))
    angles = dataset.simulated_angles_deg()  # the reference range's tilts too, when the row has one
    start = time.perf_counter()
    if cfg.projector == "supersampled":
        tilt_series = project_3d_supersampled(loaded.data, angles, detector_width_px=cfg.detector_width_px,
                                              supersampling=cfg.supersampling)
    else:
        tilt_series = project_3d(loaded.data, angles, detector_width_px=cfg.detector_width_px)
    if dataset.snr is not None:
        tilt_series = add_gaussian_noise(tilt_series, snr=dataset.snr, seed=dataset.seed)
    runtime = time.perf_counter() - start
    log.info(
        "projected %s at %d tilts (%g..%g deg) with the %s projector, snr=%s",
        loaded.data.shape,
        angles.size,
        angles[0],
        angles[-1],
        cfg.projector,
        dataset.snr,
    )
    with stage_outputs(out, angles_out, meta_path_for(out)) as (tmp_out, tmp_angles, tmp_meta):
        write_mrc(tmp_out, np.asarray(tilt_series, dtype=np.float32), voxel_size_angstrom=loaded.voxel_size_angstrom)
        write_tilt_angles(tmp_angles, angles)
        write_stage_meta(
            tmp_meta,
            stage="project_tilt_series",
            config=cfg,
            dataset=dataset,
            runtime_s=runtime,
            extra={"volume_shape_zyx": list(loaded.data.shape)},
        )
