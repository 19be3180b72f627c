"""Stage ``apply_fourier_wedge``: zero the missing wedge (the CryoGEN paper's corruption)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import FourierWedgeConfig
from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta
from cryo_pipeline.ops.wedge import apply_fourier_mask_3d, missing_wedge_mask_3d

log = logging.getLogger(__name__)


@reads("apply_fourier_wedge")
def run(*, volume_path: Path, dataset: DatasetRow, cfg: FourierWedgeConfig, out: Path) -> None:
    """Keep only the Fourier region measured by ``dataset``'s tilt range; write MRC + record."""
    loaded = read_mrc(Path(volume_path))
    start = time.perf_counter()
    mask = missing_wedge_mask_3d(
        loaded.data.shape,
        tilt_min_deg=dataset.tilt_min_deg,
        tilt_max_deg=dataset.tilt_max_deg,
        soft_edge_deg=cfg.soft_edge_deg,
    )
    corrupted = apply_fourier_mask_3d(loaded.data, mask)
    runtime = time.perf_counter() - start
    log.info(
        "zeroed the wedge outside [%g, %g] deg: %.1f %% of Fourier voxels kept",
        dataset.tilt_min_deg,
        dataset.tilt_max_deg,
        100.0 * float(mask.mean()),
    )
    with stage_outputs(out, meta_path_for(out)) as (tmp_out, tmp_meta):
        write_mrc(
            tmp_out, corrupted, voxel_size_angstrom=loaded.voxel_size_angstrom, origin_angstrom=loaded.origin_angstrom
        )
        write_stage_meta(tmp_meta, stage="apply_fourier_wedge", config=cfg, dataset=dataset, runtime_s=runtime)
