"""PSNR and SSIM exactly as the CN paper's released code computes them (its Table 1).

Van Veen et al. 2024 (coordinate networks) print PSNR/SSIM from their ``metrics.py``
(``calc_metrics``), not from the formula of their §3.6.2. The steps, on ``(d, h, w)``
volumes with y the tilt axis (their arrays are z, y, x at scoring time):

1. both volumes min–max rescaled to [0, 1] (their ``scale_to_0_1``);
2. ``norm_imgs``: the ground truth multiplied by ``0.1 / max`` (so it spans [0, 0.1]),
   the estimate standardised and given the ground truth's mean and standard deviation
   (population std). The 0.1 cancels in both scores below;
3. **PSNR** per y-slice ``(d, w)`` with ``data_range`` = that slice's ground-truth
   maximum: ``10·log10(data_range² / MSE)`` (scikit-image ``peak_signal_noise_ratio``);
   slices whose value is ±inf (an exact slice, or an empty ground-truth slice) or ≤ 0 are
   left out, the rest averaged (here a slice above 200 dB counts as exact: float
   rounding of the normalisation leaves ~1e-30 instead of 0);
4. **SSIM**: scikit-image ``structural_similarity(gt, est, channel_axis=False,
   data_range=est.max())``. ``channel_axis=False`` makes scikit-image treat axis 0 (z) as
   channels, so this is the mean over z-planes of the 2D SSIM of each ``(h, w)`` plane:
   7 × 7 uniform window, sample covariance (N/(N − 1)), K1 = 0.01, K2 = 0.03, reflected
   edges, the 3-pixel border of each plane left out of the mean; ``data_range`` is the
   normalised estimate's maximum over the whole volume.

The code rounds to 3 decimals and computes in float32; here float64, unrounded.
Reference: davevanveen/unsup_cryoet ``src/metrics.py``, ``src/dataset.py``.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

from cryo_pipeline.ops.volume_moments import check_pair, moments

__all__ = ["cn_paper_normalised", "cn_paper_scores", "psnr_cn_paper_db", "ssim_cn_paper", "SSIM_WINDOW_PX"]

SSIM_WINDOW_PX = 7
_K1, _K2 = 0.01, 0.03
_GT_RANGE = 0.1  # norm_imgs(range_=0.1)
_EXACT_DB = 200.0  # above this a slice is exact up to float rounding (+inf in the paper's code)


def _affine_maps(estimate: np.ndarray, ground_truth: np.ndarray, *, constant_estimate_ok: bool = False):
    """Steps 1–2 as two affine maps ``v ↦ a·v + b`` from one streamed pass (no float64 copy).

    Rescaling to [0, 1] and standardising are affine, so the normalised estimate is
    ``(e − mean_e) / std_e · std_g′ + mean_g′`` with the ground truth's mapped moments.
    Returns the two arrays (memory maps stay maps), ``(a_e, b_e)``, ``(a_g, b_g)`` and the
    estimate's maximum; None for a constant estimate when ``constant_estimate_ok``.
    """
    est, gt = check_pair(estimate, ground_truth)
    if est.ndim != 3:
        raise ValueError(f"the CN paper's metric scores (d, h, w) volumes, got shape {est.shape}")
    m = moments(est, gt)  # NaN/inf is an error there
    ranges = {"ground truth": (m.lo, m.hi), "estimate": (m.lo_e, m.hi_e)}
    if constant_estimate_ok and not m.hi_e > m.lo_e:
        return None
    for name, (lo, hi) in ranges.items():
        if not hi > lo:
            raise ValueError(f"the {name} is constant (every value is {lo}); the CN paper's metric rescales it "
                             "to [0, 1], which needs a range")
    g_lo, g_hi = ranges["ground truth"]
    a_g = _GT_RANGE / (g_hi - g_lo)
    b_g = -g_lo * a_g
    std_e, std_g = np.sqrt(m.m2_e / m.n), np.sqrt(m.m2_g / m.n)  # population std, as the paper's code
    a_e = a_g * std_g / std_e
    b_e = a_g * m.mean_g + b_g - a_e * m.mean_e
    return est, gt, (float(a_e), float(b_e)), (float(a_g), float(b_g)), m.hi_e


def _mapped(volume: np.ndarray, ab: tuple[float, float]) -> np.ndarray:
    return np.asarray(volume, dtype=np.float64) * ab[0] + ab[1]


def cn_paper_normalised(estimate: np.ndarray, ground_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1–2: the ``(estimate, ground_truth)`` pair as the paper's code scores it.

    Parameters
    ----------
    estimate, ground_truth : numpy.ndarray
        ``(d, h, w)`` volumes of equal shape.

    Returns
    -------
    tuple of numpy.ndarray
        float64 estimate (ground truth's mean and std) and ground truth in [0, 0.1]
        (whole volumes in memory; the two scores below go slice by slice).
    """
    est, gt, map_e, map_g, _ = _affine_maps(estimate, ground_truth)
    return _mapped(est, map_e), _mapped(gt, map_g)


def psnr_cn_paper_db(estimate: np.ndarray, ground_truth: np.ndarray) -> float:
    """The CN paper's PSNR (dB): per-y-slice PSNR after :func:`cn_paper_normalised`, averaged.

    Computed one y-slice at a time (a memory-mapped volume is never copied whole).

    Returns
    -------
    float
        Mean over the y-slices with a finite, positive PSNR; ``inf`` when no slice has
        one because every slice is exact (the paper's code would divide by zero).
    """
    return _psnr(*_affine_maps(estimate, ground_truth))


def _psnr(est, gt, map_e, map_g, _est_max) -> float:
    values = []
    for y in range(gt.shape[1]):
        truth, guess = _mapped(gt[:, y, :], map_g), _mapped(est[:, y, :], map_e)
        mse = float(np.mean((truth - guess) ** 2))
        peak = float(truth.max())
        if mse == 0.0 or peak <= 0.0:  # ±inf in the paper's code: left out
            continue
        value = 10.0 * np.log10(peak**2 / mse)
        if 0 < value < _EXACT_DB:
            values.append(value)
    return float(np.mean(values)) if values else float("inf")


def _ssim_2d(x: np.ndarray, y: np.ndarray, *, data_range: float) -> float:
    """scikit-image's 2D SSIM (uniform 7 × 7 window, sample covariance, reflect, border cropped)."""
    n = SSIM_WINDOW_PX**2
    cov_norm = n / (n - 1.0)
    mean = lambda v: uniform_filter(v, size=SSIM_WINDOW_PX, mode="reflect")  # noqa: E731
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (SSIM_WINDOW_PX - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim_cn_paper(estimate: np.ndarray, ground_truth: np.ndarray) -> float:
    """The CN paper's SSIM: mean over z of the 2D SSIM of each ``(h, w)`` plane (see module doc).

    Returns
    -------
    float
        SSIM; NaN when a plane is smaller than the 7 × 7 window (the paper's code then
        takes another path that fails on such volumes).
    """
    return _ssim(*_affine_maps(estimate, ground_truth))


def _ssim(est, gt, map_e, map_g, est_max) -> float:
    if min(gt.shape[1:]) < SSIM_WINDOW_PX or min(gt.shape) < SSIM_WINDOW_PX:
        return float("nan")
    data_range = map_e[0] * est_max + map_e[1]  # the normalised estimate's maximum (a_e > 0)
    return float(np.mean([_ssim_2d(_mapped(gt[z], map_g), _mapped(est[z], map_e), data_range=data_range)
                          for z in range(gt.shape[0])]))


def cn_paper_scores(estimate: np.ndarray, ground_truth: np.ndarray) -> dict[str, float]:
    """``psnr_cn_paper_db`` and ``ssim_cn_paper`` from one normalisation pass (what ``evaluate`` writes).

    A constant estimate, which the paper's rescaling cannot score, gives NaN for both.
    """
    maps = _affine_maps(estimate, ground_truth, constant_estimate_ok=True)
    if maps is None:
        return {"psnr_cn_paper_db": float("nan"), "ssim_cn_paper": float("nan")}
    return {"psnr_cn_paper_db": _psnr(*maps), "ssim_cn_paper": _ssim(*maps)}
