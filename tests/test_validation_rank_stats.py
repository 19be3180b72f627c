"""bench validation_rank's agreement statistic: within-dataset Spearman decides, pooled is printed."""

import pandas as pd
import pytest

from bench.validation_rank import rank_agreement


def _table(score_by_dataset):
    rows = []
    for dataset, (offset, scores) in score_by_dataset.items():
        for method, (score, truth) in zip(("wbp", "isonet", "cryogen", "cn"), scores, strict=True):
            rows.append({"dataset": dataset, "method": method, "band_fsc_mean": offset + score,
                         "dfsc_missing_mean": truth, "psnr_db": 20 + 10 * truth})
    return pd.DataFrame(rows)


def _band(table):
    (row,) = [a for a in rank_agreement(table)
              if a["score"] == "band_fsc_mean" and a["ground_truth"] == "dfsc_missing_mean"]
    return row


def test_a_score_that_ranks_within_each_dataset_tracks_even_when_its_levels_differ_between_datasets():
    # same order as the truth in each dataset, but dataset b's scores sit 0.5 lower (a worse reference)
    table = _table({"a": (0.0, [(0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.4, 0.4)]),
                    "b": (-0.5, [(0.1, 0.5), (0.2, 0.6), (0.3, 0.7), (0.4, 0.8)])})
    row = _band(table)
    assert row["spearman_within_mean"] == pytest.approx(1.0)
    assert row["spearman_within_min"] == pytest.approx(1.0)
    assert row["spearman_pooled"] < 0.8  # the levels confound the pooled rank
    assert row["tracks"]


def test_a_score_ranking_methods_backwards_does_not_track():
    table = _table({"a": (0.0, [(0.4, 0.1), (0.3, 0.2), (0.2, 0.3), (0.1, 0.4)]),
                    "b": (0.0, [(0.4, 0.5), (0.3, 0.6), (0.2, 0.7), (0.1, 0.8)])})
    row = _band(table)
    assert row["spearman_within_mean"] == pytest.approx(-1.0)
    assert not row["tracks"]


def test_one_adjacent_swap_in_one_of_two_datasets_still_tracks():
    table = _table({"a": (0.0, [(0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.4, 0.4)]),
                    "b": (0.0, [(0.1, 0.1), (0.3, 0.2), (0.2, 0.3), (0.4, 0.4)])})
    row = _band(table)
    assert row["spearman_within_min"] == pytest.approx(0.8)
    assert row["spearman_within_mean"] == pytest.approx(0.9)
    assert row["tracks"]
