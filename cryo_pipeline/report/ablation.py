"""Ablation sweeps: find datasets that differ in one acquisition parameter, plot metrics against it.

The CN paper's Figure 5 varies the angular step (1, 2, 4, 8°) at ±60° and the range
(±40 … ±70°) at 2° on one specimen. A sheet doing the same holds one row per
setting; here a *sweep* is a group of at least ``min_values`` datasets whose sheet
rows are equal except for one parameter (dataset name and methods aside).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cryo_pipeline.config.methods import CORRUPTED
from cryo_pipeline.report.figures import closing_subplots, figure_png, png_data_uri
from cryo_pipeline.report.html import FigureBlock, Section
from cryo_pipeline.report.methods import method_color, ordered_methods

IGNORED_KEYS = frozenset({"dataset", "methods"})


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _symmetric_range(setting: Mapping[str, Any]) -> float | None:
    low, high = _number(setting.get("tilt_min_deg")), _number(setting.get("tilt_max_deg"))
    return high if low is not None and high is not None and math.isclose(low, -high) else None


@dataclass(frozen=True)
class Parameter:
    """A parameter a sweep can vary: its label, how to read it, which sheet keys it spans."""

    key: str
    label: str
    value: Callable[[Mapping[str, Any]], float | None]
    spans: frozenset[str]


PARAMETERS = (
    Parameter("tilt_step_deg", "tilt step α (°)", lambda s: _number(s.get("tilt_step_deg")),
              frozenset({"tilt_step_deg"})),
    Parameter("tilt_range_deg", "tilt range β (±°)", _symmetric_range, frozenset({"tilt_min_deg", "tilt_max_deg"})),
    Parameter("tilt_max_deg", "tilt max (°)", lambda s: _number(s.get("tilt_max_deg")), frozenset({"tilt_max_deg"})),
    Parameter("tilt_min_deg", "tilt min (°)", lambda s: _number(s.get("tilt_min_deg")), frozenset({"tilt_min_deg"})),
    Parameter("snr", "SNR", lambda s: _number(s.get("snr")), frozenset({"snr"})),
    Parameter("defocus_angstrom", "defocus (Å)", lambda s: _number(s.get("defocus_angstrom")),
              frozenset({"defocus_angstrom"})),
)

METRICS = (
    ("psnr_paper_db", "PSNR, papers (dB)"),
    ("ssim_global", "SSIM global"),
    ("psnr_db", "PSNR, ours (dB)"),
    ("ssim", "SSIM, ours"),
    ("dfsc_missing_mean", "dFSC, missing region"),
    ("wedge_fill", "wedge fill"),
    ("seam_ratio", "CN seam ratio"),
)


@dataclass(frozen=True)
class Sweep:
    """Datasets equal but for ``parameter``; ``values[i]`` is ``datasets[i]``'s value (ascending)."""

    parameter: str
    label: str
    datasets: tuple[str, ...]
    values: tuple[float, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)


def detect_sweeps(settings: Mapping[str, Mapping[str, Any]], *, min_values: int = 3) -> list[Sweep]:
    """Every group of datasets whose settings differ only in one parameter of :data:`PARAMETERS`.

    Parameters
    ----------
    settings : mapping of dataset name to its sheet row (as a plain mapping)
    min_values : int
        Distinct values a group needs to count as a sweep.

    Returns
    -------
    list of Sweep
        In :data:`PARAMETERS` order, then by the first dataset's position. A dataset
        can be in several sweeps (the ±60°, 2° row of both of Figure 5's rows).
    """
    order = {name: i for i, name in enumerate(settings)}
    sweeps = []
    for parameter in PARAMETERS:
        groups: dict[str, list[tuple[float, str]]] = {}
        fixed: dict[str, dict[str, Any]] = {}
        for name, setting in settings.items():
            value = parameter.value(setting)
            if value is None:
                continue
            rest = {k: v for k, v in setting.items() if k not in IGNORED_KEYS | parameter.spans}
            key = json.dumps(rest, sort_keys=True, default=str)
            groups.setdefault(key, []).append((value, name))
            fixed[key] = rest
        for key, members in groups.items():
            if len({v for v, _ in members}) < min_values:
                continue
            members.sort(key=lambda m: (m[0], order[m[1]]))
            sweeps.append(Sweep(parameter.key, parameter.label, tuple(n for _, n in members),
                                tuple(v for v, _ in members), fixed[key]))
    return sorted(sweeps, key=lambda s: ([p.key for p in PARAMETERS].index(s.parameter),
                                         min(order[d] for d in s.datasets)))


def describe_fixed(sweep: Sweep) -> str:
    """The settings a sweep keeps fixed, in a few words for its caption."""
    f = sweep.fixed
    parts = [f"{f.get('kind', '')} {f.get('source', '')}".strip()]
    if f.get("corruption"):
        parts.append(f"corruption {f['corruption']}")
    if sweep.parameter not in ("tilt_range_deg", "tilt_min_deg", "tilt_max_deg"):
        parts.append(f"tilt {f.get('tilt_min_deg')}° to {f.get('tilt_max_deg')}°")
    if sweep.parameter != "tilt_step_deg" and f.get("tilt_step_deg") is not None:
        parts.append(f"step {f['tilt_step_deg']}°")
    if sweep.parameter != "snr":
        parts.append(f"SNR {f['snr']}" if f.get("snr") is not None else "noiseless")
    if f.get("shape_px"):
        parts.append("shape " + "×".join(str(n) for n in f["shape_px"]))
    return ", ".join(p for p in parts if p)


def sweep_metrics(sweep: Sweep, metrics: pd.DataFrame) -> pd.DataFrame:
    """The sweep's rows of the metrics table with a ``value`` column (the swept parameter)."""
    values = dict(zip(sweep.datasets, sweep.values, strict=True))
    rows = metrics[metrics["dataset"].isin(values)].copy()
    rows["value"] = rows["dataset"].map(values)
    return rows


def ablation_series(sweep: Sweep, metrics: pd.DataFrame) -> dict[str, dict[str, pd.Series]]:
    """metric → method → its values indexed by the swept parameter (ascending).

    Only metrics of :data:`METRICS` with a finite value are kept; several datasets
    with the same parameter value are averaged.
    """
    rows = sweep_metrics(sweep, metrics)
    series: dict[str, dict[str, pd.Series]] = {}
    for key, _ in METRICS:
        if key not in rows:
            continue
        for method in ordered_methods(rows["method"]):
            values = rows[rows["method"] == method].groupby("value")[key].mean().dropna().sort_index()
            if not values.empty:
                series.setdefault(key, {})[method] = values
    return series


def ablation_figure(sweep: Sweep, metrics: pd.DataFrame) -> bytes:
    """One panel per metric with a value, the metric against the swept parameter, one line per method.

    Raises ``ValueError`` when no dataset of the sweep has a metric value (all failed).
    """
    series = ablation_series(sweep, metrics)
    if not series:
        raise ValueError(f"sweep over {sweep.label}: no dataset of {list(sweep.datasets)} has a metric value")
    titles = dict(METRICS)
    ncols = min(3, len(series))
    nrows = math.ceil(len(series) / ncols)
    with closing_subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows)) as (fig, axes):
        for ax, (key, lines) in zip(axes.ravel(), series.items(), strict=False):
            for method, values in lines.items():
                ax.plot(values.index, values.to_numpy(), marker="o", ms=4, color=method_color(method),
                        ls="--" if method == CORRUPTED else "-", label=method)
            ax.set_title(titles[key], fontsize=10)
            ax.set_xlabel(sweep.label, fontsize=9)
            ax.set_xticks(sorted(set(sweep.values)))
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        for ax in axes.ravel()[len(series):]:
            ax.set_axis_off()
        legend = {}
        for ax in axes.ravel():
            legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
        fig.legend(list(legend.values()), list(legend), loc="outside right upper", fontsize=8)
        return figure_png(fig)


def ablation_section(sweeps: list[Sweep], metrics: pd.DataFrame) -> Section:
    """One figure per detected sweep (metric against the swept parameter, per method)."""
    blocks, warnings = [], []
    for sweep in sweeps:
        values = ", ".join(f"{v:g}" for v in sweep.values)
        caption = (f"Datasets {', '.join(sweep.datasets)} ({sweep.label} = {values}); fixed: "
                   f"{describe_fixed(sweep)}. Dashed: the corrupted input.")
        try:
            png = ablation_figure(sweep, metrics)
        except ValueError as error:  # every dataset of the sweep failed
            warnings.append(f"Not plotted: {error}.")
            continue
        blocks.append(FigureBlock(f"Metrics against {sweep.label}", caption, png_data_uri(png)))
    note = ("Sweeps are groups of at least three datasets whose sheet rows are equal except for one acquisition "
            "parameter (as in the CN paper's Figure 5: angular step α at ±60°, range ±β at 2°).")
    return Section(id="ablation", title="Ablation sweeps", notes=[note], warnings=warnings, figures=blocks)
