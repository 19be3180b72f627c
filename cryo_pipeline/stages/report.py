"""Stage ``report``: metrics, volumes, logs and benchmarks → one self-contained HTML report.

The report holds the summary table (one row per (dataset, method)), the failed or
missing results with their logs, the sweep summary across datasets, the ablation
sweeps the sheet contains, runtimes from the Snakemake benchmark files with the
hardware, and one section per dataset (orthoslices, Fourier slices, FSC, mask
overlay, training losses). Figures are PNGs embedded as data URIs and the CSS is
inline, so the file opens offline. Datasets are processed one at a time and every
volume is reduced to its central slices right after it is read.

Two modes. The ``report`` rule passes ``metrics.tsv`` (every result exists). After a
failed run (``snakemake --keep-going``), the workflow's ``onerror`` handler passes no
metrics table: the report is then built from the per-(dataset, method) tables that
exist and lists the others as failed with their log paths (a *partial* report). The
HTML, the sweep TSV and the sweep plot are written together, atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import cryo_pipeline
from cryo_pipeline.io.atomic import atomic_write_bytes
from cryo_pipeline.io.sheet import read_dataset_sheet
from cryo_pipeline.io.stage_records import stage_outputs
from cryo_pipeline.report import figures
from cryo_pipeline.report.ablation import ablation_section, detect_sweeps
from cryo_pipeline.report.dataset import dataset_section, load_curves
from cryo_pipeline.report.failures import failures_section, find_failures
from cryo_pipeline.report.html import FigureBlock, ReportContext, Section, pretty_json, provenance_items, render_report
from cryo_pipeline.report.losses import loss_curves_figure, read_loss_table
from cryo_pipeline.report.metrics_table import read_metric_tables, read_metrics
from cryo_pipeline.report.preprocess import preprocess_blocks, read_extraction_record
from cryo_pipeline.report.records import hardware_text, host_rows, read_volume_record
from cryo_pipeline.report.runtimes import method_job_seconds, read_benchmarks, runtimes_section
from cryo_pipeline.report.summary import summary_section
from cryo_pipeline.report.sweep import gain_figure, psnr_bars_figure, sweep_section, sweep_table, write_sweep_tsv
from cryo_pipeline.report.validation import validation_section

logger = logging.getLogger(__name__)

DEFAULT_TITLE = "Missing-wedge correction report"


def _settings(sheet: Path | None) -> dict[str, dict[str, Any]]:
    """Sheet rows as plain mappings by dataset name ({} without a sheet)."""
    if sheet is None:
        return {}
    return {row.dataset: row.model_dump(mode="json") for row in read_dataset_sheet(Path(sheet))}


def _add_losses(sections: dict[str, Section], loss_tables: Sequence[Path], failed: set[str]) -> None:
    by_dataset: dict[str, dict[str, pd.DataFrame]] = {}
    for loss_path in loss_tables:
        dataset, method, losses = read_loss_table(Path(loss_path))
        by_dataset.setdefault(dataset, {})[method] = losses
    for name, tables in by_dataset.items():
        if name not in sections:
            if name in failed:
                continue
            raise ValueError(f"loss tables for dataset {name!r}, which has no metrics row")
        block = FigureBlock(
            "Training losses",
            "Per step (10-step running mean). λ is the consistency weight: constant in the first epoch, "
            "then decaying for CryoGEN, fixed for the IsoNet-style baseline; lr relative to its peak.",
            figures.png_data_uri(loss_curves_figure(tables)),
        )
        sections[name] = dataclasses.replace(sections[name], figures=[*sections[name].figures, block])


def _add_preprocessing(sections: dict[str, Section], records: Sequence[Path], failed: set[str]) -> None:
    for record_path in records:
        record = read_extraction_record(Path(record_path))
        name = record["dataset"]["dataset"] if isinstance(record.get("dataset"), dict) else str(record.get("dataset"))
        if name not in sections:
            if name in failed:
                continue
            raise ValueError(f"extraction record {record_path} is for dataset {name!r}, which has no metrics row")
        facts, blocks = preprocess_blocks(record)
        section = sections[name]
        sections[name] = dataclasses.replace(section, facts=[*section.facts, *facts],
                                             figures=[*section.figures, *blocks])


def _annotate(table: pd.DataFrame, benchmarks_dir: Path | None) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Add ``hardware`` (stage records) and ``jobs_wall_s`` (benchmarks) to ``table``; return both sources."""
    records = [read_volume_record(p) for p in table["volume_path"]]
    table["hardware"] = [hardware_text(r) for r in records]
    methods = {str(d): list(g["method"]) for d, g in table.groupby("dataset", sort=False)}
    benchmarks = read_benchmarks(Path(benchmarks_dir) if benchmarks_dir else None, methods)
    seconds = method_job_seconds(benchmarks)
    table["jobs_wall_s"] = [seconds.get(pair, np.nan) for pair in zip(table["dataset"], table["method"], strict=True)]
    return records, benchmarks


def _dataset_sections(table: pd.DataFrame, records: list[dict[str, Any]], *, settings: Mapping[str, Any],
                      preprocess_records: Sequence[Path], loss_tables: Sequence[Path],
                      failed: set[str]) -> list[Section]:
    """One section per dataset of ``table``, with its mask overlay and loss curves."""
    sections: dict[str, Section] = {}
    for index, (name, rows) in enumerate(table.groupby("dataset", sort=False), start=1):
        logger.info("report: dataset %s (%d methods)", name, len(rows))
        by_method = {m: records[i] for i, m in zip(rows.index, rows["method"], strict=True)}
        sections[str(name)] = dataset_section(str(name), rows, index=index, setting=settings.get(str(name)),
                                              records=by_method)
    _add_preprocessing(sections, preprocess_records, failed)
    _add_losses(sections, loss_tables, failed)
    ordered = []
    for index, (name, rows) in enumerate(table.groupby("dataset", sort=False), start=1):
        ordered.append(sections[str(name)])
        validation = _validation_section(str(name), rows, index=index)
        if validation is not None:
            ordered.append(validation)
    return ordered


def _validation_section(name: str, rows: pd.DataFrame, *, index: int) -> Section | None:
    """The dataset's Validation section (issue 12) from its curves and held-out-tilt tables."""
    curves = {m: c for m, p in zip(rows["method"], rows["curves_path"], strict=True) if (c := load_curves(p))}
    heldout = {m: pd.read_csv(p, sep="\t") for m, p in zip(rows["method"], rows["heldout_path"], strict=True)
               if p and Path(p).is_file()}
    return validation_section(name, rows, index=index, curves=curves, heldout_tables=heldout)


def _default_provenance(metrics_source: str) -> dict[str, str]:
    return {
        "cryo_pipeline": cryo_pipeline.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "metrics": metrics_source,
    }


def _banner(partial: bool, n_failed: int, n_expected: int, workflow_log: str | None) -> str:
    if not partial and not n_failed:
        return ""
    text = (f"Partial report: {n_failed} of {n_expected} expected results are missing "
            "(see Failed or missing results); the rest of the report covers what finished.")
    if partial:
        text = "The workflow failed; this report was written by its error handler. " + text
    if workflow_log:
        text += f" Snakemake log: {workflow_log}."
    return text


def run(
    *,
    metrics_tsv: Path | None,
    out_html: Path,
    run_name: str,
    config: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    preprocess_records: Sequence[Path] = (),
    loss_tables: Sequence[Path] = (),
    expected_tables: Sequence[Path] = (),
    sheet: Path | None = None,
    logs_dir: Path | None = None,
    benchmarks_dir: Path | None = None,
    sweep_tsv: Path | None = None,
    sweep_png: Path | None = None,
    workflow_log: str | None = None,
) -> None:
    """Write the run's self-contained HTML report (and the sweep summary TSV and plot).

    Parameters
    ----------
    metrics_tsv : Path or None
        ``results/<run>/metrics.tsv``; ``None`` for a partial report built from the
        ``expected_tables`` that exist. Paths in the table are relative to the
        working directory or absolute.
    out_html : Path
        Report file; written atomically with the sweep outputs.
    run_name : str
        Shown in the title.
    config : mapping, optional
        Resolved configuration, shown as JSON (its ``report.title`` is the heading).
    provenance : mapping, optional
        Extra provenance, added to the package and library versions.
    preprocess_records, loss_tables : sequence of Path
        Extraction records (mask overlay) and loss tables (training curves).
    expected_tables : sequence of Path
        Every ``<dataset>/<method>/metrics.tsv`` the sheet asks for; missing ones
        are listed as failed with their logs.
    sheet : Path, optional
        The dataset sheet: dataset facts and ablation sweeps.
    logs_dir, benchmarks_dir : Path, optional
        ``logs/<run>`` (failed jobs' logs) and ``benchmarks/<run>`` (runtimes).
    sweep_tsv, sweep_png : Path, optional
        Where to write the sweep summary table and its plot.
    workflow_log : str, optional
        Snakemake's own log of a failed run, named in the partial report's banner.
    """
    out_html = Path(out_html)
    partial = metrics_tsv is None
    if partial:
        table = read_metric_tables([Path(p) for p in expected_tables if Path(p).is_file()])
    else:
        table = read_metrics(Path(metrics_tsv))
    settings = _settings(sheet)
    failures = find_failures([Path(p) for p in expected_tables], logs_dir=logs_dir, datasets=settings)
    logger.info("report %s: %d rows, %d missing result(s)", run_name, len(table), len(failures))
    records, benchmarks = _annotate(table, benchmarks_dir)
    datasets = _dataset_sections(table, records, settings=settings, preprocess_records=preprocess_records,
                                 loss_tables=loss_tables, failed={f.dataset for f in failures})

    overview = []
    if np.isfinite(table[["psnr_db", "psnr_paper_db"]].to_numpy(dtype=float)).any():
        overview.append(FigureBlock("PSNR per method", "Datasets with a ground truth; both metric families.",
                                    figures.png_data_uri(psnr_bars_figure(table))))
    sweep = sweep_table(table, failures)
    gain_png = gain_figure(sweep)
    parts = [summary_section(table, figures=overview)]
    if failures:
        parts.append(failures_section(failures))
    parts.append(sweep_section(sweep, gain_png))
    ablations = detect_sweeps(settings)
    if ablations:
        parts.append(ablation_section(ablations, table))
    parts.append(runtimes_section(benchmarks, host_rows(records), benchmarks_dir=str(benchmarks_dir or "")))
    parts.extend(datasets)

    context = ReportContext(
        run_name=run_name,
        title=str(((config or {}).get("report") or {}).get("title") or DEFAULT_TITLE),
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        version=cryo_pipeline.__version__,
        sections=parts,
        banner=_banner(partial, len(failures), len(expected_tables), workflow_log),
        config_text=pretty_json(dict(config)) if config is not None else "(no configuration given)",
        provenance=provenance_items({**_default_provenance(str(metrics_tsv or "partial: per-method tables")),
                                     **(provenance or {})}),
    )
    html = render_report(context)
    outputs = {out_html: html.encode("utf-8")}
    if sweep_tsv is not None:
        outputs[Path(sweep_tsv)] = write_sweep_tsv(sweep).encode("utf-8")
    if sweep_png is not None:
        outputs[Path(sweep_png)] = gain_png
    with stage_outputs(*outputs) as temporary:  # all files or none
        for path, data in zip(temporary, outputs.values(), strict=True):
            atomic_write_bytes(path, data)
    logger.info("wrote report %s (%.1f kB)", out_html, len(html.encode("utf-8")) / 1024)
