"""Stage ``evaluate``: one metrics row for one (dataset, method) volume.

Both volumes are memory-mapped; the real-space metrics stream over z-slabs
(:func:`cryo_pipeline.ops.metrics.scored_metrics`) and the Fourier ones share one half
spectrum per volume (:func:`cryo_pipeline.ops.fsc.fsc_metrics` also returns the wedge fill),
so memory stays near the two spectra and no volume is transformed twice.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import EvaluateConfig
from cryo_pipeline.io.angles import read_tilt_angles
from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.io.mrc import read_mrc_memmap
from cryo_pipeline.io.stage_records import read_stage_meta, stage_outputs
from cryo_pipeline.io.tables import METRIC_COLUMNS, write_metrics_row
from cryo_pipeline.ops.fsc import fsc_metrics, wedge_fill_ratio
from cryo_pipeline.ops.metrics import scored_metrics
from cryo_pipeline.ops.metrics_cn_paper import psnr_cn_paper_db, ssim_cn_paper
from cryo_pipeline.ops.slabs import row_step_means, seam_ratio
from cryo_pipeline.ops.tilts import select_tilts_in_range

log = logging.getLogger(__name__)


def measured_angles_deg(dataset: DatasetRow, *, cfg: EvaluateConfig, shape_zyx: tuple[int, ...]) -> np.ndarray:
    """The acquired tilts that define the measured Fourier region for the directional FSC.

    A real tilt series gives its own angles (those inside the sheet's range). A Fourier-
    wedged volume has a continuous measured region, so its planes are sampled finely
    enough (≤ 1 voxel apart at Nyquist) that no gap between them counts as missing.
    Otherwise the sheet's range and step (or ``cfg.default_tilt_step_deg``).
    """
    if dataset.effective_kind == "tiltseries" and dataset.angles:  # given or fetched (empiar)
        angles = read_tilt_angles(Path(dataset.angles))
        return angles[select_tilts_in_range(angles, tilt_min_deg=dataset.tilt_min_deg,
                                            tilt_max_deg=dataset.tilt_max_deg)]
    if dataset.corruption == "fourier":
        step = min(cfg.default_tilt_step_deg, float(np.degrees(2.0 / max(shape_zyx))))
        return dataset.nominal_angles_deg(default_step_deg=step, force_step=True)
    return dataset.nominal_angles_deg(default_step_deg=cfg.default_tilt_step_deg)


@reads("evaluate")
def run(
    *,
    volume_path: Path,
    dataset: DatasetRow,
    method: str,
    cfg: EvaluateConfig,
    out: Path,
    curves_out: Path,
    ground_truth_path: Path | None = None,
    meta_path: Path | None = None,
) -> None:
    """Score ``volume_path`` (against the ground truth when there is one) and write a 1-row TSV."""
    volume, voxel_size = read_mrc_memmap(Path(volume_path))
    angles = measured_angles_deg(dataset, cfg=cfg, shape_zyx=volume.shape)
    meta = read_stage_meta(meta_path)
    row: dict = {column: math.nan for column in METRIC_COLUMNS}
    row.update(
        dataset=dataset.dataset,
        method=method,
        kind=dataset.kind,
        corruption=dataset.corruption or "",
        runtime_s=meta.get("runtime_s", math.nan),
        device=meta.get("device", ""),
        voxel_size_angstrom=voxel_size,
        tilt_min_deg=dataset.tilt_min_deg,
        tilt_max_deg=dataset.tilt_max_deg,
        volume_path=str(volume_path),
        ground_truth_path=str(ground_truth_path) if ground_truth_path else "",
        curves_path="",
        seam_ratio=meta.get("seam_ratio", math.nan),  # CN: stitched slabs (stitch_slabs' record)
    )
    curves: dict = {}
    if ground_truth_path is None:
        row["wedge_fill"] = wedge_fill_ratio(volume, angles_deg=angles)
    else:
        truth, truth_voxel = read_mrc_memmap(Path(ground_truth_path))
        if truth.shape != volume.shape:
            raise ValueError(
                f"{volume_path} has shape {volume.shape} but the ground truth {ground_truth_path} has "
                f"{truth.shape}; a method must return a volume of the ground truth's shape"
            )
        scores = scored_metrics(volume, truth, windowed_ssim=cfg.windowed_ssim)
        if float(volume.max()) > float(volume.min()):  # the CN paper's code rescales both to [0, 1] (in memory)
            scores["psnr_cn_paper_db"] = psnr_cn_paper_db(np.asarray(volume), np.asarray(truth))
            scores["ssim_cn_paper"] = ssim_cn_paper(np.asarray(volume), np.asarray(truth))
        fsc = fsc_metrics(volume, truth, angles_deg=angles, voxel_size_angstrom=truth_voxel)
        curves = {k: v for k, v in fsc.items() if isinstance(v, list)}
        row.update({k: v for k, v in scores.items() if k in row})
        row.update({k: v for k, v in fsc.items() if k in row})
        row["curves_path"] = str(curves_out)
        if meta.get("slab_boundaries_y"):  # the content's own step at the seam rows: what "no seam" looks like
            row["seam_ratio_ground_truth"] = seam_ratio(row_step_means(truth), meta["slab_boundaries_y"])
    with stage_outputs(out, curves_out) as (tmp_out, tmp_curves):
        atomic_write_text(tmp_curves, json.dumps(curves, indent=1))
        write_metrics_row(tmp_out, row)
    log.info(
        "%s/%s: psnr_paper %.2f dB, ssim_global %.4f, wedge_fill %.3f",
        dataset.dataset,
        method,
        row["psnr_paper_db"],
        row["ssim_global"],
        row["wedge_fill"],
    )
