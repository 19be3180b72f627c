"""One dataset's "Validation" section: scores without ground truth, and a verdict per method.

What each row was scored against (``reference``: ``ground_truth``, ``full_range`` or
none), the held-out-band FSC and the reprojection agreement at the held-out tilts with
WBP of the working range as the baseline, the half-map FSC (overall and in the missing
wedge), the fidelity to the measured data and the isotropy, then one line per method a
biologist can act on. Beside each score: whether the rank benchmark
(``python -m bench validation_rank``) found that it tracks the ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from cryo_pipeline.config.methods import CORRUPTED, WBP
from cryo_pipeline.report import figures
from cryo_pipeline.report.html import Column, FigureBlock, Section, TableBlock, table_rows
from cryo_pipeline.report.methods import method_color, ordered_methods

VALIDATION_TABLE = (
    Column("method", "method"),
    Column("reference", "scored against", title="ground_truth, full_range (the reference range's reconstruction) or —"),
    Column("band_fsc_mean", "band FSC", ".3f", "FSC with the full-range reference in the held-out band"),
    Column("heldout_ncc_mean", "held-out NCC", ".3f", "projection vs measured image at the held-out tilts"),
    Column("heldout_frc_resolution_angstrom", "held-out FRC 0.5 (Å)", ".0f"),
    Column("halfmap_fsc_resolution_angstrom", "half-map res. (Å)", ".1f", "FSC 0.143 between the two halves"),
    Column("halfmap_dfsc_missing_mean", "half-map FSC wedge", ".3f", "half-map FSC in the missing wedge"),
    Column("measured_region_fsc_mean", "fidelity", ".3f", "FSC output vs input in the measured region"),
    Column("isotropy_z_x", "isotropy z/x", ".3f", "spectral bandwidth along z over along x (1 = isotropic)"),
)
SCORE_COLUMNS = tuple(c.key for c in VALIDATION_TABLE[2:])

MARGIN = 0.05
"""A difference in band FSC or NCC below this is a tie."""
FIDELITY_LIMIT = 0.9
"""Below this measured-region FSC a method changed what was measured."""
WEDGE_DISAGREEMENT = 0.5
"""Half maps disagree in the wedge when its FSC is below this share of the measured region's."""

_PROVISIONAL = "; read it as a consistency check, not as proof"
GROUND_TRUTH_AGREEMENT: dict[str, str] = {
    "band_fsc_mean": "on simulations it ranked the methods of each dataset as the ground truth did (Spearman 0.9 "
                     "within a dataset against the missing-region dFSC and PSNR, bench validation_rank --quick); "
                     "compare methods on one dataset: its level also depends on the reference",
    "halfmap_fsc_resolution_angstrom": "on simulations it did not rank methods as the ground truth's FSC resolution "
                                       "(Spearman 0.0 within a dataset, --quick): a method with a strong prior gives "
                                       "halves that agree where both are wrong; read it with the fidelity"
                                       + _PROVISIONAL,
    "halfmap_dfsc_missing_mean": "on simulations it did not track the ground truth's missing-region dFSC (Spearman "
                                 "-0.2 within a dataset, --quick); WBP's halves agree in the wedge through the same "
                                 "streak artefacts" + _PROVISIONAL,
}
"""Per score: what the rank benchmark found (update from ``bench/results/validation_rank.md``)."""


def _value(row: Mapping, key: str) -> float:
    value = row.get(key, math.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _compare(what: str, score: str, value: float, base: float) -> str:
    if value > base + MARGIN:
        word = "better than"
    elif value < base - MARGIN:
        word = "worse than"
    else:
        word = "no better than"
    return f"{what} {word} WBP: {score} {value:.2f} vs {base:.2f}"


def method_verdict(row: Mapping, baseline: Mapping | None) -> str:
    """One line: band filling and reprojection vs the baseline, half-map agreement, fidelity.

    ``baseline`` is the WBP row of the same dataset (or the input's row for a tomogram);
    parts whose scores are missing are left out.
    """
    parts = []
    is_baseline = baseline is not None and row.get("method") == baseline.get("method")
    band, ncc = _value(row, "band_fsc_mean"), _value(row, "heldout_ncc_mean")
    if baseline is not None and not is_baseline:
        base_band, base_ncc = _value(baseline, "band_fsc_mean"), _value(baseline, "heldout_ncc_mean")
        if math.isfinite(band) and math.isfinite(base_band):
            parts.append(_compare("fills the held-out band", "FSC", band, base_band))
        if math.isfinite(ncc) and math.isfinite(base_ncc):
            parts.append(_compare("predicts the held-out tilts", "NCC", ncc, base_ncc))
        iso, base_iso = _value(row, "isotropy_z_x"), _value(baseline, "isotropy_z_x")
        if not parts and math.isfinite(iso) and math.isfinite(base_iso):
            change = "more isotropic than" if iso > base_iso + MARGIN else "not more isotropic than"
            parts.append(f"{change} its input: z/x {iso:.2f} vs {base_iso:.2f}")
    elif is_baseline and math.isfinite(band):
        parts.append(f"baseline: band FSC {band:.2f}, held-out NCC {ncc:.2f}")
    missing, measured = _value(row, "halfmap_dfsc_missing_mean"), _value(row, "halfmap_dfsc_measured_mean")
    if math.isfinite(missing) and math.isfinite(measured):
        if missing < WEDGE_DISAGREEMENT * measured:
            parts.append(f"halves disagree in the wedge (FSC {missing:.2f} vs {measured:.2f} measured): likely invented")
        else:
            parts.append(f"halves agree in the wedge (FSC {missing:.2f} vs {measured:.2f} measured)")
    fidelity = _value(row, "measured_region_fsc_mean")
    if math.isfinite(fidelity) and not is_baseline:
        keeps = "keeps" if fidelity >= FIDELITY_LIMIT else "alters"
        parts.append(f"{keeps} the measured data (fidelity {fidelity:.2f})")
    return "; ".join(parts) if parts else "no validation score available"


def _baseline(rows: pd.DataFrame) -> Mapping | None:
    for method in (WBP, CORRUPTED):
        match = rows[rows["method"] == method]
        if not match.empty:
            return match.iloc[0].to_dict()
    return None


def heldout_figure(tables: Mapping[str, pd.DataFrame]) -> bytes:
    """NCC of projection vs measured image at each held-out tilt, one line per method."""
    with figures.closing_subplots(1, 1, figsize=(4.6, 3.2)) as (fig, axes):
        ax = axes[0, 0]
        for method in ordered_methods(tables):
            table = tables[method].sort_values("angle_deg")
            sides = [s for s in (table[table["angle_deg"] < 0], table[table["angle_deg"] >= 0]) if not s.empty]
            for i, side in enumerate(sides):  # no line across the working range
                ax.plot(side["angle_deg"], side["ncc"], marker="o", ms=3, lw=1.2, color=method_color(method),
                        label=method if i == 0 else None)
        ax.set_xlabel("held-out tilt (°)", fontsize=9)
        ax.set_ylabel("NCC, projection vs measured", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return figures.figure_png(fig)


_VALIDATION_PANELS = (("band_fsc_curve", "band FSC vs full-range reference"),
                      ("halfmap_fsc_curve", "half-map FSC"),
                      ("halfmap_fsc_missing_curve", "half-map FSC: missing wedge"))


def validation_section(name: str, rows: pd.DataFrame, *, index: int,
                       curves: Mapping[str, Mapping[str, list[float]]] | None = None,
                       heldout_tables: Mapping[str, pd.DataFrame] | None = None) -> Section | None:
    """The dataset's Validation section, or None when no method has a validation score.

    Parameters
    ----------
    rows : pandas.DataFrame
        The dataset's rows of the metrics table (one per method).
    curves : mapping of method to curves
        From ``fsc_curves.json``: ``frequency_per_angstrom`` and any of the band and
        half-map curves.
    heldout_tables : mapping of method to table
        ``angle_deg``, ``ncc`` per held-out tilt (``heldout_tilts.tsv``).
    """
    present = [c for c in SCORE_COLUMNS if c in rows.columns]
    if not present or not np.isfinite(rows[present].to_numpy(dtype=float)).any():
        return None
    table = rows.copy()
    if "reference" not in table.columns:
        table["reference"] = ""
    baseline = _baseline(table)
    notes = [f"{m}: {method_verdict(r, baseline)}" for m, r in zip(table["method"], table.to_dict("records"),
                                                                     strict=True)]
    notes += [f"{score}: {text}" for score, text in GROUND_TRUTH_AGREEMENT.items() if score in present]
    blocks = []
    plotted = {m: c for m, c in (curves or {}).items()
               if c.get("frequency_per_angstrom") and any(c.get(k) for k, _ in _VALIDATION_PANELS)}
    if plotted:
        blocks.append(FigureBlock(
            "Band and half-map FSC",
            "Left: FSC with the full-range reference in the held-out band (averaged up to the reference's "
            "0.143 shell for the table). Middle and right: FSC between the method's outputs on the even and odd "
            "halves, over whole shells and in the missing wedge; dashed lines at 0.143 and 0.5.",
            figures.png_data_uri(figures.fsc_figure(plotted, panels=_VALIDATION_PANELS)),
        ))
    if heldout_tables:
        blocks.append(FigureBlock(
            "Reprojection agreement at the held-out tilts",
            "NCC between each method's projection at a held-out tilt and the image measured there "
            "(row means removed); no method saw these images.",
            figures.png_data_uri(heldout_figure(heldout_tables)),
        ))
    return Section(
        id=f"validation-{index}", title=f"Validation: {name}",
        notes=notes,
        tables=[TableBlock("Validation scores", "No ground truth needed; the baseline is WBP of the working "
                           "range.", VALIDATION_TABLE, table_rows(table, VALIDATION_TABLE))],
        figures=blocks,
    )
