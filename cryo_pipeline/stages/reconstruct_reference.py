"""Stage ``reconstruct_reference``: the full-range reference of a tilt series (issue 12).

A row with ``reference_tilt_min_deg``/``reference_tilt_max_deg`` is reconstructed a
second time from every tilt inside that wider range (WBP or non-negative SIRT,
:mod:`cryo_pipeline.ops.reference`), on the grid of the dataset's WBP (so every method's output and the reference
share one grid). The record holds
the held-out angles, the FSC between the reconstructions of the reference's even and
odd tilts and its 0.143 shell, which the evaluation uses as the band-FSC cutoff.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import SIRT, ReferenceConfig
from cryo_pipeline.io.angles import check_angles_match, read_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, read_mrc_header, write_mrc
from cryo_pipeline.ops.reference import full_range_reference
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta

log = logging.getLogger(__name__)


@reads("reconstruct_reference")
def run(
    *,
    tilt_series_path: Path,
    angles_path: Path,
    dataset: DatasetRow,
    cfg: ReferenceConfig,
    out: Path,
    grid_volume_path: Path | None = None,
) -> None:
    """Reconstruct the reference of ``dataset`` and write it to ``out`` (MRC + ``.json`` record).

    The grid (depth) is ``grid_volume_path``'s (the dataset's WBP, so every method's output
    and the reference share one grid), else the detector width.
    """
    reference_range = dataset.reference_range_deg
    if reference_range is None:
        raise ValueError(f"dataset {dataset.dataset}: reconstruct_reference needs reference_tilt_min_deg and "
                         "reference_tilt_max_deg in the sheet")
    series = read_mrc(Path(tilt_series_path), voxel_size_angstrom=dataset.voxel_size_angstrom)
    angles = read_tilt_angles(Path(angles_path))
    check_angles_match(angles, series.data.shape[0], angles_path=angles_path, images_path=tilt_series_path)
    _, height, width = series.data.shape
    if grid_volume_path is not None:
        depth = int(read_mrc_header(Path(grid_volume_path))["shape_zyx"][0])
    else:
        depth = width
    start = time.perf_counter()
    try:
        reference = full_range_reference(
            series.data, angles, working_range_deg=(dataset.tilt_min_deg, dataset.tilt_max_deg),
            reference_range_deg=reference_range, volume_shape_zyx=(depth, height, width),
            sirt_iterations=cfg.sirt_iterations if cfg.method == SIRT else None, wbp_filter=cfg.filter,
        )
    except ValueError as error:
        raise ValueError(f"dataset {dataset.dataset}, columns reference_tilt_min_deg/max_deg: {error} "
                         f"(angles from {angles_path})") from None
    runtime = time.perf_counter() - start
    heldout = angles[reference.heldout_indices]
    log.info("%s: %s reference from %d tilts (%d held out: %s deg) -> %s in %.1f s; even/odd FSC 0.143 at shell %.1f",
             dataset.dataset, cfg.method, reference.reference_indices.size, heldout.size,
             ", ".join(f"{a:g}" for a in heldout), reference.volume.shape, runtime, reference.resolution_shell)
    with stage_outputs(out, meta_path_for(out)) as (tmp_out, tmp_meta):
        write_mrc(tmp_out, reference.volume, voxel_size_angstrom=series.voxel_size_angstrom,
                  labels=[f"cryo_pipeline reference {cfg.method} {reference_range[0]:g}..{reference_range[1]:g}"])
        write_stage_meta(
            tmp_meta, stage="reconstruct_reference", config=cfg, dataset=dataset, runtime_s=runtime,
            extra={
                "reference_method": cfg.method,
                "reference_angles_deg": [float(a) for a in angles[reference.reference_indices]],
                "heldout_indices": [int(i) for i in reference.heldout_indices],
                "heldout_angles_deg": [float(a) for a in heldout],
                "halves_fsc": [float(v) for v in np.asarray(reference.halves_fsc)],
                "resolution_shell": float(reference.resolution_shell),
            },
        )
