"""Derived half rows: each half of a ``halves`` row is a tilt-series dataset of its own (issue 12).

A sheet row with ``halves`` gives two more rows, ``<dataset>__even`` and
``<dataset>__odd``, of kind ``tiltseries``: their tilt series is the half written by
``split_halves`` (``halves: alternate``) or the user's frame stack (``halves: frames``),
with the parent's working range, methods, voxel size and CTF, and no reference range or
halves of their own. ``split_halves`` splits the parent's tilt series as the stages see it
(aligned, axis on y, where the parent has ``alignment``/``tilt_axis_deg``), so alternate
halves carry no alignment; frame stacks are raw like ``source`` and keep the parent's. Every existing rule then runs on them unchanged; only the training
seeds differ (:data:`HALF_SEED_OFFSETS`), so each half gets its own training.
"""

from __future__ import annotations

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.pipeline import PipelineConfig

HALVES = ("even", "odd")
HALF_SEPARATOR = "__"
HALF_SEED_OFFSETS = {"even": 1, "odd": 2}
"""Added to ``train.seed`` and ``cn.seed`` for the jobs of a half row (the whole series keeps the seeds)."""

_DROPPED = ("corruption", "snr", "shape_px", "reference_tilt_min_deg", "reference_tilt_max_deg", "halves",
            "source_even", "source_odd", "tilt_step_deg")


def half_name(dataset: str, half: str) -> str:
    """``"needle", "even"`` → ``"needle__even"``."""
    if half not in HALVES:
        raise ValueError(f"half must be one of {', '.join(HALVES)}, got {half!r}")
    return f"{dataset}{HALF_SEPARATOR}{half}"


def split_half_name(name: str) -> tuple[str, str] | None:
    """``"needle__even"`` → ``("needle", "even")``; None for a sheet row's name."""
    parent, sep, half = name.rpartition(HALF_SEPARATOR)
    return (parent, half) if sep and parent and half in HALVES else None


def half_series_paths(row: DatasetRow, half: str, *, base: str) -> tuple[str, str]:
    """``(tilt series, angles)`` of a half: ``base/halves/<half>.mrc|.tlt``, or the frame stacks.

    ``base`` is the parent's results folder (``results/<run>/<dataset>``); ``row`` the
    parent as the stages see it (an ``empiar`` row with its fetched paths).
    """
    if row.halves == "frames":
        source = row.source_even if half == "even" else row.source_odd
        return str(source), str(row.angles)
    return f"{base}/halves/{half}.mrc", f"{base}/halves/{half}.tlt"


def half_rows(row: DatasetRow, *, base: str) -> dict[str, DatasetRow]:
    """The derived rows of a ``halves`` row, by name (``{}`` without halves)."""
    if row.halves is None:
        return {}
    dropped = set(_DROPPED) | {"dataset", "kind", "source", "angles", "data_kind", "sha256"}
    if row.halves == "alternate":  # split from the aligned series
        dropped |= {"alignment", "tilt_axis_deg"}
    keep = row.model_dump(exclude=dropped)
    rows = {}
    for half in HALVES:
        source, angles = half_series_paths(row, half, base=base)
        name = half_name(row.dataset, half)
        rows[name] = DatasetRow.model_validate({**keep, "dataset": name, "kind": "tiltseries", "source": source,
                                                "angles": angles})
    return rows


def config_for_dataset(cfg: PipelineConfig, dataset: str) -> PipelineConfig:
    """``cfg`` as the jobs of ``dataset`` see it: a half row's training seeds offset (its own training)."""
    parsed = split_half_name(dataset)
    if parsed is None:
        return cfg
    offset = HALF_SEED_OFFSETS[parsed[1]]
    seeds = dict(  # the sections by attribute: their names are also method names
        train=cfg.train.model_copy(update={"seed": cfg.train.seed + offset}),
        cn=cfg.cn.model_copy(update={"seed": cfg.cn.seed + offset}),
    )
    return cfg.model_copy(update=seeds)
