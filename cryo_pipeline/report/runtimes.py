"""Runtimes from Snakemake's benchmark files: ``benchmarks/<run>/<rule>/<dataset>[.<method>[.<part>]].tsv``.

Snakemake writes one TSV per job of every rule with a ``benchmark:`` directive (wall
time ``s``, ``cpu_time``, ``max_rss`` in MB, ``mean_load`` in %). Dataset names may
contain dots, so a file is attributed to the longest dataset name its stem starts with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cryo_pipeline.config.methods import CN, WBP
from cryo_pipeline.report.figures import closing_subplots, figure_png, png_data_uri
from cryo_pipeline.report.html import Column, FigureBlock, Section, TableBlock, table_rows
from matplotlib import colormaps  # after figures: it selects the Agg backend

logger = logging.getLogger(__name__)

RULE_METHODS = {
    "reconstruct_wbp": WBP,
    "plan_slabs": CN,
    "fit_slab_seed": CN,
    "fit_slab": CN,
    "stitch_slabs": CN,
}
"""Rules without a method in their file name whose work is one method's."""
SCORING_RULES = ("evaluate",)
"""Rules that score rather than compute a method: left out of a method's job time."""
BENCHMARK_COLUMNS = ("rule", "dataset", "method", "job", "wall_s", "cpu_s", "max_rss_mb", "mean_load", "path")


def split_stem(stem: str, datasets: Iterable[str]) -> tuple[str, str] | None:
    """``"<dataset>.<rest>"`` → ``(dataset, rest)`` for the longest matching dataset name.

    Returns ``None`` when ``stem`` is neither a dataset name nor one followed by a dot.
    """
    matches = [d for d in datasets if stem == d or stem.startswith(d + ".")]
    if not matches:
        return None
    dataset = max(matches, key=len)
    return dataset, stem[len(dataset) + 1:]


def job_method(rule: str, rest: str, methods: Iterable[str]) -> str | None:
    """The method a job file belongs to: '' for dataset-level jobs, ``None`` when unknown.

    ``rest`` is the file stem after the dataset name (``"cryogen"``, ``"isonet.2"``, ``""``);
    its first part names the method when it is one of ``methods``, else the rule's
    method (:data:`RULE_METHODS`, e.g. a CN ``fit_slab`` job named by its slab) applies.
    """
    part = rest.split(".", 1)[0] if rest else ""
    if part in set(methods):
        return part
    if rule in RULE_METHODS:
        return RULE_METHODS[rule]
    return "" if not part else None


def _number(table: pd.DataFrame, column: str) -> float:
    if column not in table.columns or table.empty:
        return float("nan")
    return float(pd.to_numeric(table[column], errors="coerce").iloc[-1])


def read_benchmarks(root: Path | None, methods_by_dataset: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """Every benchmark file under ``root`` (``benchmarks/<run>``) of a listed dataset.

    Parameters
    ----------
    root : Path or None
        ``benchmarks/<run>``; ``None`` or absent gives an empty table.
    methods_by_dataset : mapping of dataset to its methods
        Files of other datasets, or of methods the dataset no longer lists (stale
        files of an earlier sheet), are ignored.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BENCHMARK_COLUMNS`; ``method`` is '' for a dataset-level job
        (simulation, preprocessing shared by methods), ``job`` the file stem.
    """
    rows = []
    files = sorted(Path(root).glob("*/*.tsv")) if root is not None and Path(root).is_dir() else []
    for path in files:
        split = split_stem(path.stem, methods_by_dataset)
        if split is None:
            continue
        dataset, rest = split
        rule = path.parent.name
        method = job_method(rule, rest, methods_by_dataset[dataset])
        if method is None or (method and method not in set(methods_by_dataset[dataset])):
            continue  # a file of a method the dataset no longer has
        try:
            table = pd.read_csv(path, sep="\t")
        except (OSError, ValueError, pd.errors.EmptyDataError) as error:
            logger.warning("benchmark file %s is unreadable (%s); left out", path, error)
            continue
        order = (list(methods_by_dataset).index(dataset), path.stat().st_mtime)  # jobs as they ended
        rows.append((order, {"rule": rule, "dataset": dataset, "method": method, "job": path.stem,
                     "wall_s": _number(table, "s"), "cpu_s": _number(table, "cpu_time"),
                     "max_rss_mb": _number(table, "max_rss"), "mean_load": _number(table, "mean_load"),
                     "path": str(path)}))
    rows.sort(key=lambda item: item[0])
    return pd.DataFrame([row for _, row in rows], columns=list(BENCHMARK_COLUMNS))


def method_job_seconds(benchmarks: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Summed wall time of each (dataset, method)'s own jobs, scoring left out."""
    own = benchmarks[(benchmarks["method"] != "") & ~benchmarks["rule"].isin(SCORING_RULES)]
    return {(str(d), str(m)): float(s) for (d, m), s in own.groupby(["dataset", "method"])["wall_s"].sum().items()}


def runtime_figure(benchmarks: pd.DataFrame) -> bytes:
    """Horizontal stacked bars: wall time of each dataset's jobs, one colour per rule.

    Parameters
    ----------
    benchmarks : pandas.DataFrame
        :func:`read_benchmarks` output with at least one row.
    """
    if benchmarks.empty:
        raise ValueError("runtime_figure needs at least one benchmark row")
    totals = benchmarks.groupby(["dataset", "rule"], sort=False)["wall_s"].sum().unstack(fill_value=0.0)
    datasets, rules = list(totals.index), list(totals.columns)
    with closing_subplots(1, 1, figsize=(8.0, 0.9 + 0.45 * len(datasets))) as (fig, axes):
        ax = axes[0, 0]
        left = np.zeros(len(datasets))
        colors = [colormaps["tab20"](i % 20) for i in range(len(rules))]
        for rule, color in zip(rules, colors, strict=True):
            widths = totals[rule].to_numpy(dtype=np.float64)
            ax.barh(datasets, widths, left=left, color=color, label=rule)
            left += widths
        ax.invert_yaxis()
        ax.set_xlabel("wall time of the dataset's jobs (s, Snakemake benchmarks)")
        ax.grid(axis="x", alpha=0.3)
        fig.legend(loc="outside right upper", fontsize=8)
        return figure_png(fig)



BENCHMARK_TABLE_COLUMNS = (
    Column("dataset", "dataset"), Column("rule", "rule"), Column("job", "job"),
    Column("wall_s", "wall (s)", ".1f"), Column("cpu_s", "CPU (s)", ".1f", "user + system CPU time"),
    Column("max_rss_mb", "max RSS (MB)", ".0f"), Column("mean_load", "mean load (%)", ".0f"),
)
HOST_COLUMNS = (
    Column("host", "host"), Column("devices", "devices"), Column("processor", "processor"),
    Column("platform", "platform"), Column("versions", "versions"),
)


def runtimes_section(benchmarks: pd.DataFrame, hosts: list[tuple[str, str, str, str, str]], *,
                     benchmarks_dir: str) -> Section:
    """Wall time per dataset and rule (figure and table) and the hardware the stages ran on."""
    figures, tables, notes = [], [], []
    if benchmarks.empty:
        notes.append(f"No Snakemake benchmark files under {benchmarks_dir} for these datasets.")
    else:
        figures.append(FigureBlock("Wall time per dataset and rule",
                                   f"From the Snakemake benchmark files under {benchmarks_dir}.",
                                   png_data_uri(runtime_figure(benchmarks))))
        tables.append(TableBlock("Benchmark files", f"One row per job (benchmarks under {benchmarks_dir}).",
                                 BENCHMARK_TABLE_COLUMNS, table_rows(benchmarks, BENCHMARK_TABLE_COLUMNS)))
    if hosts:
        host_table = pd.DataFrame(hosts, columns=[c.key for c in HOST_COLUMNS])
        tables.append(TableBlock("Hardware", "From the stage records (volume.json) of the scored volumes.",
                                 HOST_COLUMNS, table_rows(host_table, HOST_COLUMNS)))
    return Section(id="runtimes", title="Runtimes and hardware", notes=notes, tables=tables, figures=figures)
