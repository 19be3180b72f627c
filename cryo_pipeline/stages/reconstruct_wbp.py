"""Stage ``reconstruct_wbp``: weighted back-projection of a tilt series (the baseline)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.methods import WBP
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import WbpConfig
from cryo_pipeline.io.angles import check_angles_match, read_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, read_mrc_header
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta
from cryo_pipeline.io.volume_outputs import ome_zarr_path_for, write_volume_outputs
from cryo_pipeline.ops.tilts import select_tilts_in_range
from cryo_pipeline.ops.wbp import weighted_backprojection_3d

log = logging.getLogger(__name__)


@reads("reconstruct_wbp")
def run(
    *,
    tilt_series_path: Path,
    angles_path: Path,
    dataset: DatasetRow,
    cfg: WbpConfig,
    out: Path,
    reference_volume_path: Path | None = None,
) -> None:
    """Reconstruct ``(d, h, w)`` by WBP and write it to ``out`` (MRC, ``.ome.zarr`` and ``.json`` record).

    The depth ``d`` is the reference volume's (synthetic data: the ground truth), else
    ``cfg.thickness_px``, else the detector width. ``w`` is the detector width.
    """
    series = read_mrc(Path(tilt_series_path), voxel_size_angstrom=dataset.voxel_size_angstrom)
    angles = read_tilt_angles(Path(angles_path))
    check_angles_match(angles, series.data.shape[0], angles_path=angles_path, images_path=tilt_series_path)
    keep = select_tilts_in_range(angles, tilt_min_deg=dataset.tilt_min_deg, tilt_max_deg=dataset.tilt_max_deg)
    n_tilts, height, width = series.data.shape
    if reference_volume_path is not None:
        depth = int(read_mrc_header(Path(reference_volume_path))["shape_zyx"][0])
    else:
        depth = cfg.thickness_px or width
    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    stack = torch.from_numpy(np.ascontiguousarray(series.data[keep])).to(device)
    volume = weighted_backprojection_3d(
        stack, angles[keep], volume_shape_zyx=(depth, height, width), window=cfg.filter
    )
    volume = volume.cpu().numpy()
    runtime = time.perf_counter() - start
    log.info(
        "WBP of %d/%d tilts (%g..%g deg) -> %s in %.2f s on %s",
        keep.size,
        n_tilts,
        angles[keep].min(),
        angles[keep].max(),
        volume.shape,
        runtime,
        device,
    )
    with stage_outputs(out, ome_zarr_path_for(out), meta_path_for(out)) as (tmp_out, tmp_ome, tmp_meta):
        write_volume_outputs(tmp_out, tmp_ome, volume, voxel_size_angstrom=series.voxel_size_angstrom,
                             labels=[f"cryo_pipeline WBP {cfg.filter}"],
                             attributes={"stage": "reconstruct_wbp", "method": WBP})
        write_stage_meta(
            tmp_meta,
            stage="reconstruct_wbp",
            config=cfg,
            dataset=dataset,
            runtime_s=runtime,
            device=device,
            extra={"n_tilts_used": int(keep.size)},
        )
