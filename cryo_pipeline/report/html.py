"""Render the self-contained HTML report with jinja2.

All decisions (which columns, how numbers are formatted, what a section says) are
made here or in the stage; the template only lays the prepared values out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
import pandas as pd

MISSING = "—"
"""What a NaN / absent number renders as."""


@dataclass(frozen=True)
class Column:
    """One summary-table column: TSV column, header text, ``format`` spec, unit tooltip."""

    key: str
    header: str
    spec: str = ""
    title: str = ""


SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("dataset", "dataset"),
    Column("method", "method"),
    Column("psnr_db", "PSNR ours (dB)", ".2f", "10·log10(1/MSE) after the a·v+b fit"),
    Column("psnr_paper_db", "PSNR papers (dB)", ".2f", "10·log10(max(GT)/MSE), values as given"),
    Column("ssim", "SSIM ours", ".4f", "windowed 3D SSIM, σ = 1.5, after the fit"),
    Column("ssim_global", "SSIM global", ".4f", "CryoGEN paper's global SSIM, values as given"),
    Column("fit_a", "fit a", ".4g", "least-squares scale a in a·v+b"),
    Column("fit_b", "fit b", ".4g", "least-squares offset b in a·v+b"),
    Column("fsc_resolution_angstrom", "FSC 0.143 (Å)", ".1f"),
    Column("fsc_resolution_05_angstrom", "FSC 0.5 (Å)", ".1f"),
    Column("dfsc_measured_mean", "dFSC measured", ".3f", "mean directional FSC, measured region"),
    Column("dfsc_missing_mean", "dFSC missing", ".3f", "mean directional FSC, missing region"),
    Column("wedge_fill", "wedge fill", ".3f", "missing-region power / expected (no reference)"),
    Column("runtime_s", "runtime (s)", ".1f"),
    Column("device", "device"),
)


@dataclass(frozen=True)
class FigureBlock:
    """One inline figure: heading, caption and ``data:image/png;base64`` URI."""

    title: str
    caption: str
    data_uri: str


@dataclass(frozen=True)
class DatasetSection:
    """One dataset's part of the report."""

    name: str
    facts: Sequence[tuple[str, str]]
    notes: Sequence[str] = ()
    figures: Sequence[FigureBlock] = ()


@dataclass(frozen=True)
class ReportContext:
    """Everything the template shows, already formatted."""

    run_name: str
    generated_at: str
    version: str
    summary_header: Sequence[Column]
    summary_rows: Sequence[Sequence[str]]
    sections: Sequence[DatasetSection]
    overview_figures: Sequence[FigureBlock] = ()
    config_text: str = ""
    provenance: Sequence[tuple[str, str]] = field(default_factory=tuple)


def format_value(value: Any, spec: str = "") -> str:
    """Format one table cell: ``spec`` for numbers, ``"—"`` for NaN/None/empty.

    Parameters
    ----------
    value : Any
        Cell value from the metrics table.
    spec : str
        ``format`` spec applied to numbers (e.g. ``".2f"``); empty for text.

    Returns
    -------
    str
    """
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value if value.strip() else MISSING
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return MISSING
    return format(number, spec) if spec else str(value)


def summary_rows(table: pd.DataFrame) -> list[list[str]]:
    """Format ``table`` (one row per (dataset, method)) into the summary's cells."""
    rows = []
    for record in table.to_dict(orient="records"):
        rows.append([format_value(record.get(c.key), c.spec) for c in SUMMARY_COLUMNS])
    return rows


def pretty_json(value: Any) -> str:
    """Indented JSON of ``value``; non-JSON types (paths, ...) are written as strings."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def provenance_items(provenance: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, text)`` pairs; non-string values are written as compact JSON."""
    return [
        (str(k), v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False))
        for k, v in provenance.items()
    ]


def make_environment() -> jinja2.Environment:
    """The report's jinja2 environment (templates shipped in the package, autoescaped)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cryo_pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(context: ReportContext, *, template: str = "report.html.j2") -> str:
    """Render ``context`` into the report's HTML text.

    Parameters
    ----------
    context : ReportContext
        Prepared, formatted values.
    template : str
        Template name inside ``cryo_pipeline/report/templates``.

    Returns
    -------
    str
        A complete HTML document with inline CSS and images.
    """
    return make_environment().get_template(template).render(ctx=context, missing=MISSING)
