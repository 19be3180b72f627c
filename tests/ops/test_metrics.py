"""Real-space metrics: analytic values, invariances and the CryoGEN Table 1 calibration."""

import numpy as np
import pytest

from cryo_pipeline.ops.metrics import (
    fit_affine_to_reference,
    psnr_db,
    psnr_paper_db,
    scored_metrics,
    ssim,
    ssim_global,
)
from cryo_pipeline.ops.phantoms import hollow_sphere_paper
from cryo_pipeline.ops.prism_phantom import prism_rotations
from cryo_pipeline.ops.wedge import apply_missing_wedge_3d


@pytest.fixture(scope="module")
def ground_truth():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0.0, 1.0, size=(40, 40, 40))
    gt[0, 0, 0], gt[-1, -1, -1] = 0.0, 1.0  # exact range [0, 1]
    return gt


def test_calibration_hollow_sphere_corrupted_matches_cryogen_table1():
    # CryoGEN Table 1, "Corrupted" sphere: 21.12 dB, SSIM 0.8113 (A.7.1: 140^3, outer diameter 70)
    gt = hollow_sphere_paper((140, 140, 140))
    corrupted = apply_missing_wedge_3d(gt, tilt_min_deg=-60, tilt_max_deg=60)
    assert psnr_paper_db(corrupted, gt) == pytest.approx(21.12, abs=0.3)
    assert ssim_global(corrupted, gt) == pytest.approx(0.8113, abs=0.01)


def test_calibration_prism_corrupted_matches_cryogen_table1_over_its_ten_rotations():
    # CryoGEN Table 1, "Corrupted" prism: 14.82 dB, SSIM 0.6931 (A.7.2: 96^3, ten rotated copies)
    truths = prism_rotations(96)
    assert len(truths) == 10
    corrupted = [apply_missing_wedge_3d(t, tilt_min_deg=-60, tilt_max_deg=60) for t in truths]
    psnr = np.mean([psnr_paper_db(c, t) for c, t in zip(corrupted, truths, strict=True)])
    ssim_mean = np.mean([ssim_global(c, t) for c, t in zip(corrupted, truths, strict=True)])
    assert psnr == pytest.approx(14.82, abs=1.0)
    assert ssim_mean == pytest.approx(0.6931, abs=0.03)


def test_psnr_paper_matches_known_noise_variance(ground_truth):
    sigma = 0.05
    noise = np.random.default_rng(2).normal(0.0, sigma, size=ground_truth.shape)
    expected = 10 * np.log10(ground_truth.max() / sigma**2)
    assert psnr_paper_db(ground_truth + noise, ground_truth) == pytest.approx(expected, abs=0.1)


def test_psnr_paper_uses_unsquared_peak(ground_truth):
    # doubling both volumes: I_m x2, MSE x4, so the paper PSNR drops by 10·log10(2)
    # (a squared peak, I_m², would leave it unchanged)
    est = ground_truth + 0.1
    change = psnr_paper_db(2 * est, 2 * ground_truth) - psnr_paper_db(est, ground_truth)
    assert change == pytest.approx(-10 * np.log10(2), abs=1e-9)


def test_psnr_db_matches_least_squares_shrinkage(ground_truth):
    # ground truth already in [0, 1]: fitting v + n to v leaves MSE = σ² var / (var + σ²)
    sigma = 0.1
    noise = np.random.default_rng(3).normal(0.0, sigma, size=ground_truth.shape)
    var_g = ground_truth.var()
    expected = 10 * np.log10((var_g + sigma**2) / (sigma**2 * var_g))
    assert psnr_db(ground_truth + noise, ground_truth) == pytest.approx(expected, abs=0.1)


def test_ours_are_invariant_to_affine_rescaling(ground_truth):
    est = ground_truth + np.random.default_rng(4).normal(0.0, 0.1, size=ground_truth.shape)
    for scale, offset in [(3.0, 7.0), (0.01, -2.0)]:
        assert psnr_db(scale * est + offset, ground_truth) == pytest.approx(psnr_db(est, ground_truth), abs=1e-9)
        assert ssim(scale * est + offset, ground_truth) == pytest.approx(ssim(est, ground_truth), abs=1e-9)
    # the ground truth's own scale does not matter either
    assert psnr_db(est, 5 * ground_truth + 1) == pytest.approx(psnr_db(est, ground_truth), abs=1e-9)


def test_identical_volumes_score_perfectly(ground_truth):
    assert ssim(ground_truth, ground_truth) == pytest.approx(1.0, abs=1e-6)
    assert ssim_global(ground_truth, ground_truth) == pytest.approx(1.0, abs=1e-12)
    assert psnr_db(ground_truth, ground_truth) == np.inf
    assert psnr_paper_db(ground_truth, ground_truth) == np.inf


def test_ssim_global_of_offset_matches_formula(ground_truth):
    # v̂ = v* + c: equal variances and σ_eg = σ², so only the luminance term differs from 1
    c = 0.2
    mu = ground_truth.mean()
    c1 = 0.01**2
    expected = (2 * mu * (mu + c) + c1) / (mu**2 + (mu + c) ** 2 + c1)
    assert ssim_global(ground_truth + c, ground_truth) == pytest.approx(expected, rel=1e-9)


def test_fit_affine_recovers_scale_and_offset(ground_truth):
    a, b = fit_affine_to_reference((ground_truth - 0.3) / 2.5, ground_truth)
    assert (a, b) == (pytest.approx(2.5, rel=1e-9), pytest.approx(0.3, abs=1e-9))
    a, b = fit_affine_to_reference(np.full_like(ground_truth, 4.0), ground_truth)
    assert (a, b) == (0.0, pytest.approx(ground_truth.mean(), rel=1e-12))


def test_ssim_decreases_with_noise(ground_truth):
    rng = np.random.default_rng(5)
    values = [ssim(ground_truth + rng.normal(0, s, ground_truth.shape), ground_truth) for s in (0.05, 0.2, 0.8)]
    assert values[0] > values[1] > values[2]
    assert values[0] < 1.0


def test_scored_metrics_agrees_with_each_function(ground_truth):
    est = 2 * ground_truth + np.random.default_rng(6).normal(0, 0.1, ground_truth.shape)
    scores = scored_metrics(est, ground_truth)
    assert scores["psnr_db"] == pytest.approx(psnr_db(est, ground_truth), abs=1e-12)
    assert scores["psnr_paper_db"] == pytest.approx(psnr_paper_db(est, ground_truth), abs=1e-12)
    assert scores["ssim"] == pytest.approx(ssim(est, ground_truth), abs=1e-12)
    assert scores["ssim_global"] == pytest.approx(ssim_global(est, ground_truth), abs=1e-12)
    assert scores["fit_a"] == pytest.approx(0.5, rel=0.05)


def test_mismatched_shapes_name_both():
    with pytest.raises(ValueError, match=r"\(4, 4, 4\).*\(4, 4, 5\)"):
        psnr_db(np.zeros((4, 4, 4)), np.ones((4, 4, 5)))


@pytest.mark.parametrize("metric", [psnr_db, psnr_paper_db, ssim, ssim_global, scored_metrics])
def test_constant_ground_truth_is_rejected(metric):
    with pytest.raises(ValueError, match="constant"):
        metric(np.random.default_rng(0).random((8, 8, 8)), np.full((8, 8, 8), 2.0))


def test_paper_psnr_rejects_non_positive_peak():
    gt = -np.random.default_rng(0).random((8, 8, 8))
    with pytest.raises(ValueError, match="maximum"):
        psnr_paper_db(gt + 0.1, gt)


def test_streaming_passes_equal_whole_volume_formulas(ground_truth, monkeypatch, tmp_path):
    """Slabs, blocks with halos and memory maps give the whole-volume values (item 5 of issue 15)."""
    from scipy.ndimage import gaussian_filter

    from cryo_pipeline.ops import metrics, volume_moments

    rng = np.random.default_rng(7)
    gt = rng.random((23, 37, 41)) * 3 - 1
    est = 0.7 * gt + rng.normal(0, 0.3, gt.shape)
    monkeypatch.setattr(volume_moments, "SLAB_VOXELS", 5 * 37 * 41)  # 5 planes per slab
    monkeypatch.setattr(metrics, "SSIM_BLOCK", (7, 11, 13))  # many blocks, every face with a halo
    np.save(tmp_path / "est.npy", est.astype(np.float32))
    mapped = np.load(tmp_path / "est.npy", mmap_mode="r")
    scores = scored_metrics(mapped, gt)
    e = mapped.astype(np.float64)
    lo, hi = gt.min(), gt.max()
    g01 = (gt - lo) / (hi - lo)
    de, dg = e - e.mean(), g01 - g01.mean()
    a = np.mean(de * dg) / np.mean(de * de)
    x, y = a * e + (g01.mean() - a * e.mean()), g01

    def blur(v):
        return gaussian_filter(v, sigma=1.5, truncate=3.5, mode="reflect")

    mu_x, mu_y = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    windowed = np.mean((2 * mu_x * mu_y + 1e-4) * (2 * cxy + 9e-4) / ((mu_x**2 + mu_y**2 + 1e-4) * (vx + vy + 9e-4)))
    assert scores["ssim"] == pytest.approx(windowed, abs=1e-12)
    assert scores["fit_a"] == pytest.approx(a, rel=1e-12)
    assert scores["psnr_db"] == pytest.approx(10 * np.log10(1 / np.mean((x - y) ** 2)), abs=1e-9)
    assert scores["psnr_paper_db"] == pytest.approx(10 * np.log10(hi / np.mean((e - gt) ** 2)), abs=1e-9)
