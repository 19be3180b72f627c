"""The CN paper code's PSNR/SSIM (per-y-slice PSNR after [0, 1] rescale and mean/std match)."""

import math

import numpy as np
import pytest

from cryo_pipeline.ops.metrics_cn_paper import cn_paper_normalised, cn_paper_scores, psnr_cn_paper_db, ssim_cn_paper


def _hand_case():
    """(1, 3, 5) volumes of 0/1 with the same number of ones: the normalisation is a plain ×0.1.

    y = 0: truth 0 1 0 1 0, estimate 1 1 0 0 0 → MSE 2/5, PSNR = −10·log10(0.4) = 3.9794 dB
    y = 1: identical → +inf → left out (as the paper's code does)
    y = 2: truth 1 1 0 0 0, estimate 0 0 1 1 0 → MSE 4/5, PSNR = −10·log10(0.8) = 0.9691 dB
    mean over the kept slices: 2.4743 dB.
    """
    truth = np.array([[[0, 1, 0, 1, 0], [0, 1, 1, 0, 0], [1, 1, 0, 0, 0]]], dtype=np.float64)
    estimate = np.array([[[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0]]], dtype=np.float64)
    return estimate, truth


def test_psnr_reproduces_the_hand_computed_case():
    estimate, truth = _hand_case()
    expected = 0.5 * (-10 * math.log10(0.4) - 10 * math.log10(0.8))
    assert expected == pytest.approx(2.47425, abs=1e-5)
    assert psnr_cn_paper_db(estimate, truth) == pytest.approx(expected, abs=1e-9)


def test_psnr_ignores_the_estimates_offset_and_scale_but_not_the_truths_shape():
    estimate, truth = _hand_case()
    expected = psnr_cn_paper_db(estimate, truth)
    # min-max rescale, then mean/std matching: any positive affine map of the estimate scores the same
    assert psnr_cn_paper_db(7.0 * estimate - 3.0, truth) == pytest.approx(expected, abs=1e-9)
    assert psnr_cn_paper_db(estimate, 5.0 * truth + 2.0) == pytest.approx(expected, abs=1e-9)


def test_normalisation_puts_truth_in_0_to_0_1_and_matches_the_estimates_moments():
    rng = np.random.default_rng(0)
    truth = rng.random((6, 8, 10))
    estimate = 4.0 * truth + rng.normal(0, 0.5, truth.shape) - 2.0
    est, gt = cn_paper_normalised(estimate, truth)
    assert gt.min() == pytest.approx(0.0) and gt.max() == pytest.approx(0.1)
    assert est.mean() == pytest.approx(gt.mean(), abs=1e-12)
    assert est.std() == pytest.approx(gt.std(), rel=1e-12)


def test_an_exact_estimate_scores_inf_and_one():
    truth = np.random.default_rng(1).random((8, 9, 10))
    assert psnr_cn_paper_db(2 * truth + 1, truth) == math.inf
    assert ssim_cn_paper(2 * truth + 1, truth) == pytest.approx(1.0, abs=1e-12)


def _ssim_by_loops(x, y, data_range):
    """2D SSIM with explicit 7 × 7 windows (reflected edges), border of 3 left out."""
    n, pad = 49, 3
    xp, yp = np.pad(x, pad, mode="symmetric"), np.pad(y, pad, mode="symmetric")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(pad, x.shape[0] - pad):
        for j in range(pad, x.shape[1] - pad):
            a = xp[i : i + 7, j : j + 7].ravel()
            b = yp[i : i + 7, j : j + 7].ravel()
            va, vb = a.var() * n / (n - 1), b.var() * n / (n - 1)
            cov = np.mean((a - a.mean()) * (b - b.mean())) * n / (n - 1)
            values.append((2 * a.mean() * b.mean() + c1) * (2 * cov + c2)
                          / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_is_the_mean_over_z_planes_of_the_windowed_2d_ssim():
    rng = np.random.default_rng(2)
    truth = rng.random((7, 11, 12))
    estimate = truth + rng.normal(0, 0.3, truth.shape)
    est, gt = cn_paper_normalised(estimate, truth)
    data_range = est.max()  # the code passes the normalised estimate's maximum
    expected = np.mean([_ssim_by_loops(gt[z], est[z], data_range) for z in range(gt.shape[0])])
    assert ssim_cn_paper(estimate, truth) == pytest.approx(expected, abs=1e-10)
    assert 0.0 < expected < 1.0


def test_worse_estimates_score_lower_and_errors_are_clear():
    rng = np.random.default_rng(3)
    truth = np.zeros((8, 12, 12))
    truth[2:6, 3:9, 3:9] = 1.0
    mild, strong = (truth + rng.normal(0, s, truth.shape) for s in (0.05, 0.3))
    assert psnr_cn_paper_db(mild, truth) > psnr_cn_paper_db(strong, truth) + 5
    assert ssim_cn_paper(mild, truth) > ssim_cn_paper(strong, truth)
    with pytest.raises(ValueError, match="ground truth is constant"):
        psnr_cn_paper_db(truth, np.ones_like(truth))
    with pytest.raises(ValueError, match="differ"):
        psnr_cn_paper_db(truth[:-1], truth)
    assert math.isnan(ssim_cn_paper(truth[:, :5], truth[:, :5]))  # planes smaller than the 7 x 7 window


def test_scores_from_one_pass_equal_the_two_functions_on_a_memory_map(tmp_path):
    """What evaluate writes (one normalisation, slice by slice, memory-mapped float32) = the two scores."""
    rng = np.random.default_rng(4)
    truth = rng.random((12, 10, 14)).astype(np.float32)
    estimate = (truth + 0.2 * rng.standard_normal(truth.shape)).astype(np.float32)
    np.save(tmp_path / "e.npy", estimate)
    mapped = np.load(tmp_path / "e.npy", mmap_mode="r")
    scores = cn_paper_scores(mapped, truth)
    assert scores["psnr_cn_paper_db"] == pytest.approx(psnr_cn_paper_db(estimate, truth), rel=1e-9)
    assert scores["ssim_cn_paper"] == pytest.approx(ssim_cn_paper(estimate, truth), rel=1e-9)
    assert 0 < scores["ssim_cn_paper"] < 1 and scores["psnr_cn_paper_db"] > 0


def test_a_constant_estimate_scores_nan_in_evaluate_and_raises_in_the_functions():
    truth = np.random.default_rng(5).random((8, 8, 8))
    constant = np.full_like(truth, 0.3)
    assert all(math.isnan(v) for v in cn_paper_scores(constant, truth).values())
    with pytest.raises(ValueError, match="estimate is constant"):
        psnr_cn_paper_db(constant, truth)
