"""One dataset's section: facts, orthoslices, Fourier slices and FSC curves.

Volumes are read one by one and reduced to their central slices and y-projection
(:class:`~cryo_pipeline.report.figures.VolumeViews`) right away, so at most one full
volume is in memory. With a ground truth, everything is shown on its [0, 1] scale:
the ground truth min–max scaled, each method after its a·v+b fit.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from cryo_pipeline.io.mrc import read_mrc
from cryo_pipeline.report import figures
from cryo_pipeline.report.html import FigureBlock, Section, format_value
from cryo_pipeline.report.records import slab_boundaries

logger = logging.getLogger(__name__)

NO_GROUND_TRUTH_NOTE = (
    "No ground truth: only the no-reference metrics are shown (wedge fill, and the seam ratio for CN); "
    "PSNR, SSIM and FSC need a reference."
)
SEAM_RATIO_LIMIT = 1.2
"""A CN seam ratio at or below this shows no visible seams."""


def first_value(values: pd.Series) -> Any:
    """First non-empty / finite value of ``values``, else None."""
    for v in values:
        if isinstance(v, str) and v:
            return v
        if isinstance(v, float) and math.isfinite(v):
            return v
    return None


def load_views(path: str, *, voxel_size_angstrom: float | None) -> tuple[figures.VolumeViews, float, float, float]:
    """Read one MRC and keep only its views, min, max and voxel size (Å, 0 = unknown)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"volume {path} listed in the metrics table does not exist "
                                f"(paths are relative to {Path.cwd()})")
    vol = read_mrc(Path(path), voxel_size_angstrom=voxel_size_angstrom, allow_missing_voxel_size=True)
    views = figures.VolumeViews.from_volume(vol.data)
    lo, hi = float(vol.data.min()), float(vol.data.max())
    return views, lo, hi, float(vol.voxel_size_angstrom)


def load_curves(path: str) -> dict[str, list[float]] | None:
    """Read a curves JSON; ``None`` when ``path`` is empty or the file is absent/empty."""
    if not path:
        return None
    file = Path(path)
    if not file.is_file() or file.stat().st_size == 0:
        logger.warning("curves file %s is absent or empty; no FSC plot for it", path)
        return None
    curves = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(curves, dict) or not curves.get("frequency_per_angstrom"):
        logger.warning("curves file %s has no frequency_per_angstrom; no FSC plot for it", path)
        return None
    return curves


def seam_text(ratio: float) -> str:
    """``"1.05 (≤ 1.2: no visible seams)"`` or ``"1.60 (> 1.2: seams visible)"``."""
    verdict = "no visible seams" if ratio <= SEAM_RATIO_LIMIT else "seams visible"
    sign = "≤" if ratio <= SEAM_RATIO_LIMIT else ">"
    return f"{ratio:.3f} ({sign} {SEAM_RATIO_LIMIT}: {verdict})"


def _facts(rows: pd.DataFrame, gt_path: str | None, voxel: float | None,
           setting: Mapping[str, Any]) -> list[tuple[str, str]]:
    tmin, tmax = first_value(rows["tilt_min_deg"]), first_value(rows["tilt_max_deg"])
    tilt = f"{tmin:g}° to {tmax:g}°" if tmin is not None and tmax is not None else format_value(None)
    facts = [
        ("kind", format_value(first_value(rows["kind"]))),
        ("corruption", format_value(first_value(rows["corruption"]))),
        ("voxel size (Å)", format_value(voxel, ".4g")),
        ("tilt range", tilt),
    ]
    if setting:
        facts += [("tilt step", format_value(setting.get("tilt_step_deg"), "g") + "°"),
                  ("SNR", format_value(setting.get("snr"), "g") if setting.get("snr") else "noiseless / as acquired"),
                  ("source", str(setting.get("source", "")))]
    facts += [("ground truth", gt_path or "none (no-reference metrics only)"), ("methods", ", ".join(rows["method"]))]
    return facts


def dataset_section(name: str, rows: pd.DataFrame, *, index: int,
                    setting: Mapping[str, Any] | None = None,
                    records: Mapping[str, Mapping[str, Any]] | None = None) -> Section:
    """Build one dataset's section.

    Parameters
    ----------
    name : str
        Dataset name.
    rows : pandas.DataFrame
        Its rows of the normalised metrics table, in method order.
    index : int
        Position of the dataset (the section's HTML id).
    setting : mapping, optional
        Its sheet row (tilt step, SNR, source are added to the facts).
    records : mapping of method to stage record, optional
        ``volume.json`` of each method (CN's slab boundaries are drawn on its slices).
    """
    records = records or {}
    gt_path = next(iter(rows["ground_truth_path"][rows["ground_truth_path"] != ""]), None)
    if len({p for p in rows["ground_truth_path"] if p}) > 1:
        logger.warning("dataset %s lists several ground truths; using %s", name, gt_path)
    voxel = first_value(rows["voxel_size_angstrom"])
    views: dict[str, figures.VolumeViews] = {}
    notes: list[str] = []
    warnings: list[str] = []
    gt_range: tuple[float, float] | None = None
    if gt_path:
        gt_views, lo, hi, header_voxel = load_views(gt_path, voxel_size_angstrom=voxel)
        voxel = voxel or header_voxel or None
        if hi > lo:  # display everything on the [0, 1] ground-truth scale of our metrics
            gt_range = (lo, hi)
            gt_views = gt_views.affine(1.0 / (hi - lo), -lo / (hi - lo))
        views[figures.GROUND_TRUTH] = gt_views
    else:
        notes.append(NO_GROUND_TRUTH_NOTE)
    unfitted, y_lines = [], {}
    for record in rows.to_dict(orient="records"):
        method_views, _, _, header_voxel = load_views(record["volume_path"], voxel_size_angstrom=voxel)
        voxel = voxel or header_voxel or None
        a, b = record["fit_a"], record["fit_b"]
        if gt_range is not None and math.isfinite(a) and math.isfinite(b):
            method_views = method_views.affine(a, b)
        elif gt_range is not None:
            unfitted.append(record["method"])
        views[record["method"]] = method_views
        boundaries = slab_boundaries(records.get(record["method"], {}))
        if boundaries:
            y_lines[record["method"]] = [b - 0.5 for b in boundaries]  # the seam lies between rows b-1 and b
        if math.isfinite(record.get("seam_ratio", math.nan)):
            notes.append(f"{record['method']} seam ratio {seam_text(record['seam_ratio'])}: mean |Δ| between "
                         "adjacent y-rows across slab boundaries over the same within slabs.")
    if unfitted:
        warnings.append(f"no a·v+b fit in the table for {', '.join(unfitted)}: shown on their own scale")
    scale = ("ground truth min–max scaled to [0, 1], each method after its a·v+b fit; "
             "grey range: 1st–99th percentile of the ground truth's slices"
             if gt_range else "values as stored; grey range: 1st–99th percentile of all slices")
    guides = " Yellow dashes: CN slab boundaries." if y_lines else ""
    tmin, tmax = first_value(rows["tilt_min_deg"]), first_value(rows["tilt_max_deg"])
    tilt = (tmin, tmax) if tmin is not None and tmax is not None else None
    blocks = [
        FigureBlock("Central orthoslices", f"Columns: volumes; rows: central XY, XZ, YZ slices. {scale}.{guides}",
                    figures.png_data_uri(figures.orthoslices_figure(views, y_lines=y_lines))),
        FigureBlock(
            "Central Fourier slice (k_y = 0)",
            "log10 amplitude of the (k_z, k_x) plane through the origin, shared colour scale"
            + ("; dashed lines bound the measured region (tilt range)" if tilt else "")
            + ". The missing wedge is the region around k_z; a method that fills it shows power there.",
            figures.png_data_uri(figures.fourier_slices_figure(views, voxel_size_angstrom=voxel, tilt_range_deg=tilt)),
        ),
    ]
    del views
    if gt_path:
        curves = {m: c for m, p in zip(rows["method"], rows["curves_path"], strict=True)
                  if (c := load_curves(p)) is not None}
        if curves:
            blocks.append(FigureBlock(
                "Fourier shell correlation against the ground truth",
                "FSC over whole shells and the directional FSC restricted to the measured and the "
                "missing Fourier region; dashed lines at 0.143 and 0.5.",
                figures.png_data_uri(figures.fsc_figure(curves)),
            ))
        else:
            warnings.append("no FSC curves were recorded for this dataset")
    return Section(id=f"dataset-{index}", title=f"Dataset: {name}",
                   facts=_facts(rows, gt_path, voxel, setting or {}), notes=notes, warnings=warnings,
                   figures=blocks)
