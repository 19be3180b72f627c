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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import EvaluateConfig
from cryo_pipeline.io.angles import read_tilt_angles
from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.io.mrc import read_mrc, read_mrc_memmap
from cryo_pipeline.io.stage_records import meta_path_for, read_stage_meta, stage_outputs
from cryo_pipeline.io.tables import METRIC_COLUMNS, write_heldout_table, write_metrics_row
from cryo_pipeline.ops.fsc import fsc_metrics, shell_frequency_per_angstrom, wedge_fill_ratio
from cryo_pipeline.ops.metrics import scored_metrics
from cryo_pipeline.ops.metrics_cn_paper import cn_paper_scores
from cryo_pipeline.ops.slabs import row_step_means, seam_ratio
from cryo_pipeline.ops.tilts import select_tilts_in_range
from cryo_pipeline.ops.validation import Halves, HeldOut, validation_scores

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
    validation: ValidationInputs | None = None,
    heldout_out: Path | None = None,
) -> None:
    """Score ``volume_path`` (against the ground truth, else the full-range reference) and write a 1-row TSV.

    With ``validation`` also the no-ground-truth scores (issue 12) and, into
    ``heldout_out``, one row per held-out tilt (header only when there is no reference).
    The volume and the ground truth are memory-mapped; their scores are streamed.
    """
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
        reference="",
        heldout_path="",
        seam_ratio=meta.get("seam_ratio", math.nan),  # CN: stitched slabs (stitch_slabs' record)
    )
    curves: dict = {}
    validation = validation or ValidationInputs()
    truth = truth_voxel = None
    if ground_truth_path is not None:
        truth, truth_voxel = read_mrc_memmap(Path(ground_truth_path))
        if truth.shape != volume.shape:
            raise ValueError(
                f"{volume_path} has shape {volume.shape} but the ground truth {ground_truth_path} has "
                f"{truth.shape}; a method must return a volume of the ground truth's shape"
            )
        row["reference"] = "ground_truth"
    elif validation.reference_path is not None:
        reference = _reference_on_grid(validation.reference_path, volume.shape, volume_path)
        if reference is not None:
            truth, truth_voxel = reference.data, reference.voxel_size_angstrom
            row["reference"] = "full_range"
    if truth is None:
        row["wedge_fill"] = wedge_fill_ratio(volume, angles_deg=angles)
    else:
        scores = scored_metrics(volume, truth, windowed_ssim=cfg.windowed_ssim)
        scores.update(cn_paper_scores(volume, truth))  # NaN for a constant volume (nothing to rescale)
        fsc = fsc_metrics(volume, truth, angles_deg=angles, voxel_size_angstrom=truth_voxel)
        curves = {k: v for k, v in fsc.items() if isinstance(v, list)}
        row.update({k: v for k, v in scores.items() if k in row})
        row.update({k: v for k, v in fsc.items() if k in row})
        row["curves_path"] = str(curves_out)
        if meta.get("slab_boundaries_y") and row["reference"] == "ground_truth":  # the content's own step at the seams
            row["seam_ratio_ground_truth"] = seam_ratio(row_step_means(truth), meta["slab_boundaries_y"])
    columns, validation_curves, heldout_rows = _validation(volume, voxel_size, dataset, angles, validation,
                                                           volume_path)
    row.update(columns)
    if validation_curves:
        curves.update(validation_curves)
        curves.setdefault("frequency_per_angstrom", shell_frequency_per_angstrom(
            min(volume.shape) // 2 + 1, box_px=min(volume.shape), voxel_size_angstrom=voxel_size).tolist())
        row["curves_path"] = str(curves_out)
    finals = [out, curves_out] + ([heldout_out] if heldout_out is not None else [])
    if heldout_out is not None:
        row["heldout_path"] = str(heldout_out) if heldout_rows else ""
    with stage_outputs(*finals) as tmp_paths:
        atomic_write_text(tmp_paths[1], json.dumps(curves, indent=1))
        write_metrics_row(tmp_paths[0], row)
        if heldout_out is not None:
            write_heldout_table(tmp_paths[2], [{"dataset": dataset.dataset, "method": method, **r}
                                               for r in heldout_rows])
    log.info(
        "%s/%s: psnr_paper %.2f dB, ssim_global %.4f, wedge_fill %.3f",
        dataset.dataset,
        method,
        row["psnr_paper_db"],
        row["ssim_global"],
        row["wedge_fill"],
    )


# --- issue 12: validation without ground truth ---------------------------------------------
@dataclass(frozen=True)
class ValidationInputs:
    """Optional files for the no-ground-truth scores of one (dataset, method).

    ``reference_path``: the full-range reference (its ``.json`` record beside it gives the
    held-out tilts and the resolution shell); ``tilt_series_path``/``angles_path``: the
    whole series the held-out images come from; ``half_paths``: the method's outputs on
    the even and odd halves; ``method_input_path``: the volume the method was given.
    """

    reference_path: Path | None = None
    tilt_series_path: Path | None = None
    angles_path: Path | None = None
    half_paths: tuple[Path, Path] | None = None
    method_input_path: Path | None = None


def _reference_on_grid(path: Path, shape: tuple[int, ...], volume_path: Path):
    """The reference volume, or None (logged) when it is not on the method's grid."""
    reference = read_mrc(Path(path))
    if reference.data.shape != tuple(shape):
        log.warning("%s has shape %s but the reference %s has %s: no reference-based scores (a binned output?)",
                    volume_path, tuple(shape), path, reference.data.shape)
        return None
    return reference


def _same_grid(path: Path, shape: tuple[int, ...], what: str):
    data = read_mrc(Path(path)).data
    if data.shape != tuple(shape):
        log.warning("%s %s has shape %s, the output %s: left out", what, path, data.shape, tuple(shape))
        return None
    return data


def _validation(volume: np.ndarray, voxel_size_angstrom: float, dataset: DatasetRow, angles: np.ndarray,
                inputs: ValidationInputs, volume_path: Path):
    """Columns, curves and held-out rows of :func:`cryo_pipeline.ops.validation.validation_scores` from files."""
    shape = volume.shape
    heldout = halves = method_input = None
    if inputs.reference_path is not None and inputs.tilt_series_path is not None and inputs.angles_path is not None:
        reference = _reference_on_grid(inputs.reference_path, shape, volume_path)
        record = read_stage_meta(meta_path_for(Path(inputs.reference_path)))
        series = read_mrc(Path(inputs.tilt_series_path)).data
        if reference is not None and series.shape[1:] == (shape[1], shape[2]):
            index = np.asarray(record["heldout_indices"], dtype=np.int64)
            heldout = HeldOut(reference.data, float(record["resolution_shell"]), series[index],
                              read_tilt_angles(Path(inputs.angles_path))[index])
        elif reference is not None:
            log.warning("tilt images %s do not match the output's (y, x) %s: no reprojection scores",
                        series.shape[1:], shape[1:])
    if inputs.half_paths is not None:
        even, odd = (_same_grid(p, shape, "half map") for p in inputs.half_paths)
        if even is not None and odd is not None:
            halves = Halves(even, odd, dataset.tilt_min_deg, dataset.tilt_max_deg)
    if inputs.method_input_path is not None:
        method_input = _same_grid(inputs.method_input_path, shape, "method input")
    if heldout is not None or halves is not None or method_input is not None:
        volume = np.array(volume)  # in memory and writable (torch reprojects it); the scores need it whole
    return validation_scores(volume, voxel_size_angstrom=voxel_size_angstrom,
                             working_angles_deg=angles, heldout=heldout, halves=halves, method_input=method_input)
