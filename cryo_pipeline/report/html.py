"""Render the self-contained HTML report with jinja2.

All decisions (which columns, how numbers are formatted, what a section says) are
made in the report modules and the stage; the template only lays out a list of
:class:`Section` s, each with facts, notes, tables, figures and log excerpts.
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
    """One table column: source key, header text, ``format`` spec (numbers), header tooltip."""

    key: str
    header: str
    spec: str = ""
    title: str = ""

    @property
    def numeric(self) -> bool:
        """Numbers are right-aligned; text columns have no spec."""
        return bool(self.spec)


@dataclass(frozen=True)
class TableBlock:
    """A table with formatted cells; ``groups`` = optional ``(label, colspan)`` header row above."""

    title: str
    caption: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[str]]
    groups: Sequence[tuple[str, int]] = ()
    css_class: str = ""


@dataclass(frozen=True)
class FigureBlock:
    """One inline figure: heading, caption and ``data:image/png;base64`` URI."""

    title: str
    caption: str
    data_uri: str


@dataclass(frozen=True)
class LogBlock:
    """An excerpt of a log file, shown folded."""

    label: str
    path: str
    text: str


@dataclass(frozen=True)
class Section:
    """One ``<section>`` of the report, all values already formatted (plain text)."""

    id: str
    title: str
    facts: Sequence[tuple[str, str]] = ()
    notes: Sequence[str] = ()
    warnings: Sequence[str] = ()
    tables: Sequence[TableBlock] = ()
    figures: Sequence[FigureBlock] = ()
    logs: Sequence[LogBlock] = ()


@dataclass(frozen=True)
class ReportContext:
    """Everything the template shows."""

    run_name: str
    title: str
    generated_at: str
    version: str
    sections: Sequence[Section]
    banner: str = ""
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


def table_rows(table: pd.DataFrame, columns: Sequence[Column]) -> list[list[str]]:
    """Format ``table``'s records into cells of ``columns`` (absent keys render as missing)."""
    return [[format_value(record.get(c.key), c.spec) for c in columns] for record in table.to_dict(orient="records")]


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
