"""Stage ``report``: ``metrics.tsv`` + volumes → one self-contained HTML report.

The report holds a summary table (one row per (dataset, method)), and per dataset
the central orthoslices, the central (k_z, k_x) Fourier slice and, where there is a
ground truth, the FSC curves. Figures are PNGs embedded as data URIs and the CSS is
inline, so the file opens offline. Datasets are processed one at a time and every
volume is reduced to its central slices and y-projection right after it is read, so
at most one full volume is in memory. The HTML is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import platform
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import cryo_pipeline
from cryo_pipeline.io.atomic import atomic_write_text
from cryo_pipeline.io.mrc import read_mrc
from cryo_pipeline.report import figures
from cryo_pipeline.report.losses import loss_curves_figure, read_loss_table
from cryo_pipeline.report.preprocess import preprocess_blocks, read_extraction_record
from cryo_pipeline.report.html import (
    SUMMARY_COLUMNS,
    DatasetSection,
    FigureBlock,
    ReportContext,
    format_value,
    pretty_json,
    provenance_items,
    render_report,
    summary_rows,
)

logger = logging.getLogger(__name__)

METHOD_ORDER = ("corrupted", "wbp", "isonet", "cryogen", "cn")
TEXT_COLUMNS = (
    "dataset", "method", "kind", "corruption", "device",
    "volume_path", "ground_truth_path", "curves_path",
)
NUMERIC_COLUMNS = (
    "psnr_db", "psnr_paper_db", "ssim", "ssim_global", "fit_a", "fit_b",
    "fsc_resolution_angstrom", "fsc_resolution_05_angstrom", "dfsc_measured_mean",
    "dfsc_missing_mean", "wedge_fill", "runtime_s", "voxel_size_angstrom",
    "tilt_min_deg", "tilt_max_deg",
)
REQUIRED_COLUMNS = ("dataset", "method", "volume_path")
NO_GROUND_TRUTH_NOTE = "no ground truth: only no-reference metrics (wedge fill)"


def read_metrics(path: Path) -> pd.DataFrame:
    """Read ``metrics.tsv``; text columns as str ('' when empty), metrics as float.

    Rows are ordered by dataset (first appearance) and method (corrupted, wbp,
    isonet, cryogen, cn, then others). Absent optional columns become empty/NaN.
    """
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: metrics table lacks required column(s) {missing}; "
            f"it has {list(table.columns)} (is it the output of the evaluate stage?)"
        )
    absent = [c for c in (*TEXT_COLUMNS, *NUMERIC_COLUMNS) if c not in table.columns]
    if absent:
        logger.warning("%s: columns %s absent; shown as %s", path, absent, format_value(None))
    for col in TEXT_COLUMNS:
        table[col] = table[col].str.strip() if col in table.columns else ""
    for col in NUMERIC_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce") if col in table.columns else np.nan
    if table.empty:
        raise ValueError(f"{path}: metrics table has no rows; nothing to report")
    dup = table[table.duplicated(["dataset", "method"], keep=False)]
    if not dup.empty:
        pairs = sorted(set(zip(dup["dataset"], dup["method"], strict=True)))
        raise ValueError(f"{path}: (dataset, method) pairs listed more than once: {pairs}; "
                         "the table needs one row per pair")
    datasets = {name: i for i, name in enumerate(dict.fromkeys(table["dataset"]))}
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    table["_d"] = table["dataset"].map(datasets)
    table["_m"] = table["method"].map(lambda m: rank.get(m, len(rank)))
    table = table.sort_values(["_d", "_m"], kind="stable").drop(columns=["_d", "_m"])
    return table.reset_index(drop=True)


def _first(values: pd.Series) -> Any:
    """First non-empty / finite value of ``values``, else None."""
    for v in values:
        if isinstance(v, str) and v:
            return v
        if isinstance(v, float) and math.isfinite(v):
            return v
    return None


def _load_volume(
    path: str, *, voxel_size_angstrom: float | None
) -> tuple[figures.VolumeViews, float, float, float]:
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


def _facts(rows: pd.DataFrame, gt_path: str | None, voxel: float | None) -> list[tuple[str, str]]:
    tmin, tmax = _first(rows["tilt_min_deg"]), _first(rows["tilt_max_deg"])
    tilt = f"{tmin:g}° to {tmax:g}°" if tmin is not None and tmax is not None else format_value(None)
    return [
        ("kind", format_value(_first(rows["kind"]))),
        ("corruption", format_value(_first(rows["corruption"]))),
        ("voxel size (Å)", format_value(voxel, ".4g")),
        ("tilt range", tilt),
        ("ground truth", gt_path or "none"),
        ("methods", ", ".join(rows["method"])),
    ]


def dataset_section(name: str, rows: pd.DataFrame) -> DatasetSection:
    """Build one dataset's section (reads its volumes one by one; keeps only views)."""
    gt_paths = {p for p in rows["ground_truth_path"] if p}
    if len(gt_paths) > 1:
        logger.warning("dataset %s lists several ground truths %s; using the first", name, sorted(gt_paths))
    gt_path = next(iter(rows["ground_truth_path"][rows["ground_truth_path"] != ""]), None)
    voxel = _first(rows["voxel_size_angstrom"])
    views: dict[str, figures.VolumeViews] = {}
    notes: list[str] = []
    gt_range: tuple[float, float] | None = None
    if gt_path:
        gt_views, lo, hi, header_voxel = _load_volume(gt_path, voxel_size_angstrom=voxel)
        voxel = voxel or header_voxel or None
        if hi > lo:  # display everything on the [0, 1] ground-truth scale of our metrics
            gt_range = (lo, hi)
            gt_views = gt_views.affine(1.0 / (hi - lo), -lo / (hi - lo))
        views[figures.GROUND_TRUTH] = gt_views
    else:
        notes.append(NO_GROUND_TRUTH_NOTE)
    unfitted = []
    for record in rows.to_dict(orient="records"):
        method_views, _, _, header_voxel = _load_volume(record["volume_path"], voxel_size_angstrom=voxel)
        voxel = voxel or header_voxel or None
        a, b = record["fit_a"], record["fit_b"]
        if gt_range is not None and math.isfinite(a) and math.isfinite(b):
            method_views = method_views.affine(a, b)
        elif gt_range is not None:
            unfitted.append(record["method"])
        views[record["method"]] = method_views
    if unfitted:
        notes.append(f"no a·v+b fit in the table for {', '.join(unfitted)}: shown on their own scale")
    scale = ("ground truth min–max scaled to [0, 1], each method after its a·v+b fit; "
             "grey range: 1st–99th percentile of the ground truth's slices"
             if gt_range else "values as stored; grey range: 1st–99th percentile of all slices")
    tmin, tmax = _first(rows["tilt_min_deg"]), _first(rows["tilt_max_deg"])
    tilt = (tmin, tmax) if tmin is not None and tmax is not None else None
    blocks = [
        FigureBlock("Central orthoslices", f"Rows: volumes; columns: central XY, XZ, YZ slices. {scale}.",
                    figures.png_data_uri(figures.orthoslices_figure(views))),
        FigureBlock(
            "Central Fourier slice (k_y = 0)",
            "log10 amplitude of the (k_z, k_x) plane through the origin, shared colour scale"
            + ("; dashed lines bound the measured region (tilt range)" if tilt else "")
            + ". The missing wedge is the region around k_z; a method that fills it shows power there.",
            figures.png_data_uri(figures.fourier_slices_figure(
                views, voxel_size_angstrom=voxel, tilt_range_deg=tilt)),
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
            notes.append("no FSC curves were recorded for this dataset")
    return DatasetSection(name=name, facts=_facts(rows, gt_path, voxel), notes=notes, figures=blocks)


def _default_provenance(metrics_tsv: Path) -> dict[str, str]:
    return {
        "cryo_pipeline": cryo_pipeline.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "metrics table": str(metrics_tsv),
    }


def run(
    *,
    metrics_tsv: Path,
    out_html: Path,
    run_name: str,
    config: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    preprocess_records: list[Path] | tuple[Path, ...] = (),
    loss_tables: list[Path] | tuple[Path, ...] = (),
) -> None:
    """Write the run's self-contained HTML report.

    Parameters
    ----------
    metrics_tsv : Path
        ``results/<run>/metrics.tsv`` (one row per (dataset, method)); the paths in
        it are relative to the working directory or absolute.
    out_html : Path
        Report file; written atomically (nothing appears if any step fails).
    run_name : str
        Shown in the title.
    config : mapping, optional
        Resolved configuration, shown as JSON at the end.
    provenance : mapping, optional
        Extra provenance (command line, commit, ...), added to the package and
        library versions.
    preprocess_records : list of Path
        Extraction records (``preprocess/subtomos.json``); each adds the mask overlay,
        the mask fraction and the cube count to its dataset's section.
    loss_tables : list of Path
        ``<dataset>/<method>/losses.tsv`` of trained methods; each dataset gets a figure
        of its loss curves.
    """
    metrics_tsv, out_html = Path(metrics_tsv), Path(out_html)
    table = read_metrics(metrics_tsv)
    logger.info("report %s: %d rows from %s", run_name, len(table), metrics_tsv)
    sections = []
    for name, rows in table.groupby("dataset", sort=False):
        logger.info("report: dataset %s (%d methods)", name, len(rows))
        sections.append(dataset_section(str(name), rows))
    by_name = {section.name: index for index, section in enumerate(sections)}
    for record_path in preprocess_records:
        record = read_extraction_record(Path(record_path))
        name = record["dataset"]["dataset"] if isinstance(record.get("dataset"), dict) else str(record.get("dataset"))
        if name not in by_name:
            raise ValueError(f"extraction record {record_path} is for dataset {name!r}, which has no metrics row")
        facts, blocks = preprocess_blocks(record)
        section = sections[by_name[name]]
        sections[by_name[name]] = dataclasses.replace(
            section, facts=[*section.facts, *facts], figures=[*section.figures, *blocks]
        )
    losses_by_dataset: dict[str, dict[str, pd.DataFrame]] = {}
    for loss_path in loss_tables:
        dataset, method, losses = read_loss_table(Path(loss_path))
        losses_by_dataset.setdefault(dataset, {})[method] = losses
    for name, tables in losses_by_dataset.items():
        if name not in by_name:
            raise ValueError(f"loss tables for dataset {name!r}, which has no metrics row")
        block = FigureBlock(
            "Training losses",
            "Per step (10-step running mean). λ is the consistency weight: constant in the first epoch, "
            "then decaying for CryoGEN, fixed for the IsoNet-style baseline; lr relative to its peak.",
            figures.png_data_uri(loss_curves_figure(tables)),
        )
        section = sections[by_name[name]]
        sections[by_name[name]] = dataclasses.replace(section, figures=[*section.figures, block])
    overview = []
    if np.isfinite(table[["psnr_db", "psnr_paper_db"]].to_numpy(dtype=float)).any():
        overview.append(FigureBlock(
            "PSNR per method", "Datasets with a ground truth; both metric families.",
            figures.png_data_uri(figures.metric_bars_figure(table)),
        ))
    context = ReportContext(
        run_name=run_name,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        version=cryo_pipeline.__version__,
        summary_header=SUMMARY_COLUMNS,
        summary_rows=summary_rows(table),
        sections=sections,
        overview_figures=overview,
        config_text=pretty_json(dict(config)) if config is not None else "(no configuration given)",
        provenance=provenance_items({**_default_provenance(metrics_tsv), **(provenance or {})}),
    )
    html = render_report(context)
    atomic_write_text(out_html, html)
    logger.info("wrote report %s (%.1f kB)", out_html, len(html.encode("utf-8")) / 1024)
