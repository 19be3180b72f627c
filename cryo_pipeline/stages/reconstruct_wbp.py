"""Stage ``reconstruct_wbp``: weighted back-projection of a tilt series (the baseline)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import WbpConfig
from cryo_pipeline.io.angles import check_angles_match, read_tilt_angles
from cryo_pipeline.io.mrc import read_mrc, read_mrc_header, write_mrc
from cryo_pipeline.ops.wbp import weighted_backprojection_3d
from cryo_pipeline.stages.outputs import meta_path_for, stage_outputs, write_stage_meta

log = logging.getLogger(__name__)


def select_tilts_in_range(angles_deg: np.ndarray, *, tilt_min_deg: float, tilt_max_deg: float) -> np.ndarray:
    """Indices of the tilts inside [tilt_min_deg, tilt_max_deg] (0.01° tolerance).

    This is how a real full-range series becomes a wedge problem: the sheet's range
    may be narrower than the file's angles (e.g. keep ±60° of a ±76° series).
    """
    keep = np.flatnonzero((angles_deg >= tilt_min_deg - 1e-2) & (angles_deg <= tilt_max_deg + 1e-2))
    if keep.size < 2:
        raise ValueError(
            f"only {keep.size} tilt(s) of {angles_deg.min():g}..{angles_deg.max():g} deg lie inside the sheet's "
            f"range [{tilt_min_deg:g}, {tilt_max_deg:g}]; widen tilt_min_deg/tilt_max_deg"
        )
    return keep


def run(
    *,
    tilt_series_path: Path,
    angles_path: Path,
    dataset: DatasetRow,
    cfg: WbpConfig,
    out: Path,
    reference_volume_path: Path | None = None,
) -> None:
    """Reconstruct ``(d, h, w)`` by WBP and write it to ``out`` (MRC + ``.json`` record).

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
    with stage_outputs(out, meta_path_for(out)) as (tmp_out, tmp_meta):
        write_mrc(
            tmp_out, volume, voxel_size_angstrom=series.voxel_size_angstrom, labels=[f"cryo_pipeline WBP {cfg.filter}"]
        )
        write_stage_meta(
            tmp_meta,
            stage="reconstruct_wbp",
            config=cfg,
            dataset=dataset,
            runtime_s=runtime,
            device=device,
            extra={"n_tilts_used": int(keep.size)},
        )
