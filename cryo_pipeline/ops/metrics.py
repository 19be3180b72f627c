"""Real-space image-quality metrics against a ground truth (DESIGN.md §4).

Two families:

* *as the papers print them*, on the values as given (no rescaling):
  :func:`psnr_paper_db` (CryoGEN A.3.1, CN §3.6.2) and :func:`ssim_global` (CryoGEN's
  global SSIM: one mean, variance and covariance per volume);
* *ours*, robust to a method's intensity scale: the ground truth is mapped to [0, 1]
  (min–max), ``a·v̂ + b`` is fitted to it by least squares
  (:func:`fit_affine_to_reference`), then :func:`psnr_db` = 10·log10(1/MSE) and
  :func:`ssim` = windowed 3D SSIM (Gaussian window σ = 1.5, data range 1).

All functions take ``(d, h, w)`` arrays (any equal shapes work) and compute in float64.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

SSIM_SIGMA_PX = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_pair(estimate: np.ndarray, ground_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimate, dtype=np.float64)
    gt = np.asarray(ground_truth, dtype=np.float64)
    if est.shape != gt.shape:
        raise ValueError(
            f"estimate shape {est.shape} and ground_truth shape {gt.shape} differ; "
            "crop or resample one to match the other"
        )
    if est.size == 0:
        raise ValueError(f"volumes are empty (shape {est.shape})")
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(gt))):
        raise ValueError("estimate or ground_truth contains NaN or inf values")
    return est, gt


def _ground_truth_range(gt: np.ndarray) -> tuple[float, float]:
    lo, hi = float(gt.min()), float(gt.max())
    if hi <= lo:
        raise ValueError(
            f"ground_truth is constant (every value is {lo}); its range is 0, so the "
            "metric is undefined: pass a ground truth with structure"
        )
    return lo, hi


def _db(ratio: float) -> float:
    return float("inf") if ratio == np.inf else float(10.0 * np.log10(ratio))


def psnr_paper_db(estimate: np.ndarray, ground_truth: np.ndarray) -> float:
    """PSNR as printed by the papers: 10·log10(I_m / MSE), I_m = max of the ground truth.

    I_m is *not* squared (as printed in CryoGEN A.3.1 and CN §3.6.2) and nothing is
    rescaled, so the value depends on the methods' intensity scale.

    Parameters
    ----------
    estimate, ground_truth : numpy.ndarray
        ``(d, h, w)`` volumes of equal shape.

    Returns
    -------
    float
        PSNR in dB; ``inf`` when the volumes are identical.
    """
    est, gt = _as_pair(estimate, ground_truth)
    _ground_truth_range(gt)
    peak = float(gt.max())
    if peak <= 0:
        raise ValueError(
            f"ground_truth maximum ({peak}) must be > 0 for the papers' PSNR "
            "(10·log10(max/MSE)); use psnr_db for data with a non-positive maximum"
        )
    mse = float(np.mean((est - gt) ** 2))
    return _db(peak / mse if mse > 0 else np.inf)


def ssim_global(estimate: np.ndarray, ground_truth: np.ndarray) -> float:
    """CryoGEN's global SSIM: one mean, variance and covariance per volume.

    SSIM = (2 μ_e μ_g + C1)(2 σ_eg + C2) / ((μ_e² + μ_g² + C1)(σ_e² + σ_g² + C2)),
    C1 = (0.01 L)², C2 = (0.03 L)², L = max − min of the ground truth; population
    (1/N) variances and covariance; values as given.

    Parameters
    ----------
    estimate, ground_truth : numpy.ndarray
        ``(d, h, w)`` volumes of equal shape.

    Returns
    -------
    float
        Global SSIM, 1 for identical volumes.
    """
    est, gt = _as_pair(estimate, ground_truth)
    lo, hi = _ground_truth_range(gt)
    c1 = (SSIM_K1 * (hi - lo)) ** 2
    c2 = (SSIM_K2 * (hi - lo)) ** 2
    mu_e, mu_g = est.mean(), gt.mean()
    de, dg = est - mu_e, gt - mu_g
    var_e, var_g, cov = np.mean(de * de), np.mean(dg * dg), np.mean(de * dg)
    num = (2 * mu_e * mu_g + c1) * (2 * cov + c2)
    den = (mu_e**2 + mu_g**2 + c1) * (var_e + var_g + c2)
    return float(num / den)


def fit_affine_to_reference(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(a, b)`` minimising ‖a·estimate + b − reference‖².

    Parameters
    ----------
    estimate, reference : numpy.ndarray
        ``(d, h, w)`` volumes of equal shape.

    Returns
    -------
    a, b : float
        Scale and offset; a constant estimate gives ``a = 0``, ``b = mean(reference)``.
    """
    est, ref = _as_pair(estimate, reference)
    de = est - est.mean()
    var_e = float(np.mean(de * de))
    a = float(np.mean(de * (ref - ref.mean())) / var_e) if var_e > 0 else 0.0
    b = float(ref.mean() - a * est.mean())
    return a, b


def _fitted_to_unit_range(
    estimate: np.ndarray, ground_truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Min–max map the ground truth to [0, 1] and fit the estimate to it."""
    est, gt = _as_pair(estimate, ground_truth)
    lo, hi = _ground_truth_range(gt)
    gt01 = (gt - lo) / (hi - lo)
    a, b = fit_affine_to_reference(est, gt01)
    return a * est + b, gt01, a, b


def psnr_db(estimate: np.ndarray, ground_truth: np.ndarray) -> float:
    """Our PSNR: ground truth min–max mapped to [0, 1], estimate affinely fitted to it.

    PSNR = 10·log10(1 / MSE(a·v̂ + b, v*₀₁)), so it is invariant to any affine
    rescaling ``s·v̂ + t`` (s ≠ 0) of the estimate.

    Parameters
    ----------
    estimate, ground_truth : numpy.ndarray
        ``(d, h, w)`` volumes of equal shape.

    Returns
    -------
    float
        PSNR in dB; ``inf`` when the fit is exact.
    """
    fitted, gt01, _, _ = _fitted_to_unit_range(estimate, ground_truth)
    mse = float(np.mean((fitted - gt01) ** 2))
    return _db(1.0 / mse if mse > 0 else np.inf)


def _windowed_ssim(x: np.ndarray, y: np.ndarray, *, data_range: float) -> float:
    """Mean windowed SSIM with a Gaussian window (population moments, reflect edges)."""

    def blur(v: np.ndarray) -> np.ndarray:
        return gaussian_filter(v, sigma=SSIM_SIGMA_PX, truncate=SSIM_TRUNCATE, mode="reflect")

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def ssim(estimate: np.ndarray, ground_truth: np.ndarray) -> float:
    """Our SSIM: windowed 3D SSIM after the [0, 1] mapping and affine fit of :func:`psnr_db`.

    Gaussian window σ = 1.5 voxels (truncated at 3.5 σ, reflecting edges), data
    range 1, K1 = 0.01, K2 = 0.03, local population moments; the SSIM map is
    averaged over the whole volume.

    Parameters
    ----------
    estimate, ground_truth : numpy.ndarray
        ``(d, h, w)`` volumes of equal shape.

    Returns
    -------
    float
        Mean SSIM, 1 for identical volumes.
    """
    fitted, gt01, _, _ = _fitted_to_unit_range(estimate, ground_truth)
    return _windowed_ssim(fitted, gt01, data_range=1.0)


def scored_metrics(estimate: np.ndarray, ground_truth: np.ndarray) -> dict[str, float]:
    """All real-space metrics of one estimate against its ground truth.

    Parameters
    ----------
    estimate, ground_truth : numpy.ndarray
        ``(d, h, w)`` volumes of equal shape.

    Returns
    -------
    dict
        ``psnr_db``, ``psnr_paper_db``, ``ssim``, ``ssim_global`` and the fit
        ``fit_a``, ``fit_b`` (estimate → ground truth mapped to [0, 1]).
    """
    est, gt = _as_pair(estimate, ground_truth)
    fitted, gt01, a, b = _fitted_to_unit_range(est, gt)
    mse = float(np.mean((fitted - gt01) ** 2))
    return {
        "psnr_db": _db(1.0 / mse if mse > 0 else np.inf),
        "psnr_paper_db": psnr_paper_db(est, gt),
        "ssim": _windowed_ssim(fitted, gt01, data_range=1.0),
        "ssim_global": ssim_global(est, gt),
        "fit_a": a,
        "fit_b": b,
    }
