"""The no-ground-truth scores rank methods as the ground truth does (issue 12, item 4).

Runs ``bench/validation_rank.py --quick`` through the real workflow: two simulated
datasets (a 32×48×48 phantom and the 65³ ribosome map), ±60° working / ±76° reference,
halves, methods wbp, isonet, cryogen and cn (8 pairs), demo-scale training shortened.
"""

import pytest

from bench.validation_rank import measure

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return measure(quick=True, keep=tmp_path_factory.mktemp("rank"))


def _rho(result, score, truth):
    (row,) = [a for a in result["agreement"] if a["score"] == score and a["ground_truth"] == truth]
    return row


def test_every_pair_has_every_validation_score(result):
    metrics = result["metrics"]
    assert len(metrics) == 8
    for column in ("band_fsc_mean", "heldout_ncc_mean", "halfmap_fsc_resolution_angstrom",
                   "halfmap_dfsc_missing_mean", "measured_region_fsc_mean", "psnr_db", "dfsc_missing_mean"):
        assert metrics[column].notna().all(), column
    assert set(metrics["reference"]) == {"ground_truth"}


# Measured on the quick run (8 pairs, 2026-12-04): the band FSC ranks the four methods of each dataset as the
# ground truth does (within-dataset Spearman 1.0 and 0.8 against the missing-region dFSC, the same against PSNR;
# pooled over both datasets 0.62 and 0.91: its level also depends on the dataset's reference). The half-map FSC
# resolution does not (within 0.0, pooled 0.67): CN's halves agree best on the ribosome while its ground-truth
# resolution is the worst. Strict: a run where the half-map FSC reaches 0.8 fails here until this record, the
# README and the report's note are updated.
@pytest.mark.parametrize("truth", ["dfsc_missing_mean", "psnr_db"])
def test_band_fsc_ranks_methods_as_the_ground_truth(result, truth):
    agreement = _rho(result, "band_fsc_mean", truth)
    assert agreement["spearman_within_mean"] >= 0.8, agreement
    assert agreement["tracks"]


@pytest.mark.xfail(strict=True, reason="measured within-dataset Spearman 0.0 (pooled 0.67) < 0.8 on the quick run: "
                                       "the half-map FSC does not rank methods as the ground truth (issue 12: "
                                       "blocked, needs the filer's decision)")
def test_halfmap_fsc_ranks_methods_as_the_ground_truth(result):
    assert _rho(result, "halfmap_fsc_resolution_angstrom", "fsc_resolution_angstrom")["spearman_within_mean"] >= 0.8
