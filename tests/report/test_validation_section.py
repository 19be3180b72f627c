"""The report's Validation section: verdicts a biologist can read, table, figures."""

import math

import numpy as np
import pandas as pd

from cryo_pipeline.report.validation import method_verdict, validation_section


def _row(method, **scores):
    base = {"method": method, "reference": "full_range", "band_fsc_mean": math.nan, "heldout_ncc_mean": math.nan,
            "heldout_frc_resolution_angstrom": math.nan, "halfmap_fsc_resolution_angstrom": math.nan,
            "halfmap_dfsc_missing_mean": math.nan, "halfmap_dfsc_measured_mean": math.nan,
            "measured_region_fsc_mean": math.nan, "isotropy_z_x": math.nan}
    return {**base, **scores}


WBP = _row("wbp", band_fsc_mean=0.31, heldout_ncc_mean=0.84, halfmap_dfsc_missing_mean=0.6,
           halfmap_dfsc_measured_mean=0.7, measured_region_fsc_mean=1.0)


def test_a_method_that_fills_the_band_and_whose_halves_agree():
    row = _row("cn", band_fsc_mean=0.62, heldout_ncc_mean=0.95, halfmap_dfsc_missing_mean=0.55,
               halfmap_dfsc_measured_mean=0.7, measured_region_fsc_mean=0.97)
    verdict = method_verdict(row, WBP)
    assert "fills the held-out band better than WBP: FSC 0.62 vs 0.31" in verdict
    assert "predicts the held-out tilts better than WBP: NCC 0.95 vs 0.84" in verdict
    assert "halves agree in the wedge" in verdict and "keeps the measured data (fidelity 0.97)" in verdict


def test_a_method_that_invents_structure_in_the_wedge():
    row = _row("cryogen", band_fsc_mean=0.33, halfmap_dfsc_missing_mean=0.1, halfmap_dfsc_measured_mean=0.7,
               measured_region_fsc_mean=0.6)
    verdict = method_verdict(row, WBP)
    assert "fills the held-out band no better than WBP: FSC 0.33 vs 0.31" in verdict
    assert "halves disagree in the wedge (FSC 0.10 vs 0.70 measured): likely invented" in verdict
    assert "alters the measured data (fidelity 0.60)" in verdict


def test_tomogram_rows_compare_isotropy_with_the_input():
    corrupted = _row("corrupted", reference="", isotropy_z_x=0.62)
    verdict = method_verdict(_row("isonet", reference="", isotropy_z_x=0.85), corrupted)
    assert verdict == "more isotropic than its input: z/x 0.85 vs 0.62"
    assert method_verdict(_row("cn"), None) == "no validation score available"


def test_section_lists_every_method_and_skips_datasets_without_scores():
    rows = pd.DataFrame([WBP, _row("cn", band_fsc_mean=0.5, heldout_ncc_mean=0.9)])
    curves = {"cn": {"frequency_per_angstrom": [0.0, 0.1, 0.2], "band_fsc_curve": [float("nan"), 0.6, 0.4],
                     "halfmap_fsc_curve": [1.0, 0.9, 0.3]}}
    heldout = {m: pd.DataFrame({"angle_deg": [-76.0, -62.0, 62.0, 76.0], "ncc": [0.6, 0.9, 0.9, 0.6]})
               for m in ("wbp", "cn")}
    section = validation_section("needle", rows, index=1, curves=curves, heldout_tables=heldout)
    assert section.title == "Validation: needle"
    assert [n.split(":")[0] for n in section.notes[:2]] == ["wbp", "cn"]
    assert section.tables[0].rows[1][:3] == ["cn", "full_range", "0.500"]
    assert len(section.figures) == 2 and all(f.data_uri.startswith("data:image/png;base64,") for f in section.figures)
    empty = pd.DataFrame([_row("wbp"), _row("cn")])
    assert validation_section("phantom", empty, index=2) is None
    assert np.isnan(empty["band_fsc_mean"]).all()
