"""Real-space image-quality metrics against a ground truth (DESIGN.md §4).

Two families:

* *as the papers print them*, on the values as given (no rescaling):
  :func:`psnr_paper_db` (CryoGEN A.3.1, CN §3.6.2) and :func:`ssim_global` (CryoGEN's
  global SSIM: one mean, variance and covariance per volume);
* *ours*, robust to a method's intensity scale: the ground truth is mapped to [0, 1]
  (min–max), ``a·v̂ + b`` is fitted to it by least squares
  (:func:`fit_affine_to_reference`), then :func:`psnr_db` = 10·log10(1/MSE) and
  :func:`ssim` = windowed 3D SSIM (Gaussian window σ = 1.5, data range 1).

All functions take ``(d, h, w)`` arrays (any equal shapes work; memory maps too) and compute
in float64, **streaming over z-slabs**: one pass gathers the moments
(:mod:`cryo_pipeline.ops.volume_moments`: means, variances and covariance merged slab by slab,
the ground truth's range, Σ(v̂ − v)²) from which the papers' PSNR, the global SSIM and
the affine fit follow; a second pass, only for :func:`psnr_db` and :func:`ssim`, sums the
fitted squared error and the windowed SSIM map slab by slab, each slab with a halo of the
Gaussian window's radius so its map equals the whole volume's. Memory is a few slabs, never a
float64 copy of the volume.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from cryo_pipeline.ops import volume_moments
from cryo_pipeline.ops.volume_moments import Moments, as_3d, check_pair, moments

SSIM_SIGMA_PX = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Halo of a windowed-SSIM block: the radius of scipy's truncated Gaussian kernel.
SSIM_HALO_PX = int(SSIM_TRUNCATE * SSIM_SIGMA_PX + 0.5)
#: Core of a windowed-SSIM block (zyx): with its halo ~1.25× the work of the bare block,
#: ~8 float64 arrays of it in memory (~340 MiB) whatever the volume's size.
SSIM_BLOCK = (64, 256, 256)


def _ground_truth_range(m: Moments) -> tuple[float, float]:
    lo, hi = m.lo, m.hi
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
    return _psnr_paper(moments(estimate, ground_truth))


def _psnr_paper(m: Moments) -> float:
    _ground_truth_range(m)
    peak = m.hi
    if peak <= 0:
        raise ValueError(
            f"ground_truth maximum ({peak}) must be > 0 for the papers' PSNR "
            "(10·log10(max/MSE)); use psnr_db for data with a non-positive maximum"
        )
    mse = m.sse / m.n
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
    return _ssim_global(moments(estimate, ground_truth))


def _ssim_global(m: Moments) -> float:
    lo, hi = _ground_truth_range(m)
    c1 = (SSIM_K1 * (hi - lo)) ** 2
    c2 = (SSIM_K2 * (hi - lo)) ** 2
    mu_e, mu_g = m.mean_e, m.mean_g
    var_e, var_g, cov = m.m2_e / m.n, m.m2_g / m.n, m.c_eg / m.n
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
    m = moments(estimate, reference)
    var_e = m.m2_e / m.n
    a = float((m.c_eg / m.n) / var_e) if var_e > 0 else 0.0
    return a, float(m.mean_g - a * m.mean_e)


def _unit_range_fit(m: Moments) -> tuple[float, float, float, float]:
    """``(a, b, lo, hi)``: the affine fit of the estimate to the ground truth mapped to [0, 1]."""
    lo, hi = _ground_truth_range(m)
    var_e = m.m2_e / m.n
    a = float((m.c_eg / m.n / (hi - lo)) / var_e) if var_e > 0 else 0.0
    return a, float((m.mean_g - lo) / (hi - lo) - a * m.mean_e), lo, hi


def _blocks(shape: tuple[int, ...], core: tuple[int, int, int]):
    """Boxes ``(lo, hi)`` of at most ``core`` voxels that tile a 3-D ``shape``."""
    edges = [range(0, n, c) for n, c in zip(shape, core, strict=True)]
    for z in edges[0]:
        for y in edges[1]:
            for x in edges[2]:
                lo = (z, y, x)
                yield lo, tuple(min(a + c, n) for a, c, n in zip(lo, core, shape, strict=True))


def _fitted_pass(estimate: np.ndarray, ground_truth: np.ndarray, m: Moments, *,
                 windowed: bool) -> tuple[float, float]:
    """Second pass: ``(MSE of a·v̂ + b against the [0, 1] ground truth, mean windowed SSIM or NaN)``.

    Without the windowed SSIM the pass runs over z-slabs; with it, over 3-D blocks of
    :data:`SSIM_BLOCK` voxels, each read with a halo of :data:`SSIM_HALO_PX` (inside the
    volume), so the Gaussian filters see the same neighbours as on the whole volume and the
    block's SSIM map is the whole volume's map there (reflecting edges only at the volume's).
    """
    a, b, lo, hi = _unit_range_fit(m)
    est, gt = (as_3d(v) for v in check_pair(estimate, ground_truth))
    shape = est.shape
    slab = max(1, volume_moments.SLAB_VOXELS // (shape[1] * shape[2]))
    core = SSIM_BLOCK if windowed else (slab, shape[1], shape[2])
    halo = SSIM_HALO_PX if windowed else 0
    sse = ssim_sum = 0.0
    for block_lo, block_hi in _blocks(shape, core):
        outer = tuple(slice(max(0, a0 - halo), min(n, a1 + halo))
                      for a0, a1, n in zip(block_lo, block_hi, shape, strict=True))
        inner = tuple(slice(a0 - o.start, a1 - o.start) for a0, a1, o in zip(block_lo, block_hi, outer, strict=True))
        fitted = np.asarray(est[outer], dtype=np.float64) * a + b
        gt01 = (np.asarray(gt[outer], dtype=np.float64) - lo) / (hi - lo)
        diff = fitted[inner] - gt01[inner]
        sse += float(np.vdot(diff, diff))
        if windowed:
            ssim_sum += float(_ssim_map(fitted, gt01, data_range=1.0)[inner].sum())
    n = est.size
    return sse / n, (ssim_sum / n if windowed else float("nan"))


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
    mse, _ = _fitted_pass(estimate, ground_truth, moments(estimate, ground_truth), windowed=False)
    return _db(1.0 / mse if mse > 0 else np.inf)


def _ssim_map(x: np.ndarray, y: np.ndarray, *, data_range: float) -> np.ndarray:
    """Windowed SSIM map with a Gaussian window (population moments, reflect edges)."""

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
    return num / den


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
    return _fitted_pass(estimate, ground_truth, moments(estimate, ground_truth), windowed=True)[1]


def scored_metrics(estimate: np.ndarray, ground_truth: np.ndarray, *, windowed_ssim: bool = True) -> dict[str, float]:
    """All real-space metrics of one estimate against its ground truth, in two streaming passes.

    Parameters
    ----------
    estimate, ground_truth : numpy.ndarray
        ``(d, h, w)`` volumes of equal shape (memory maps are read slab by slab).
    windowed_ssim : bool
        Compute the windowed SSIM (``ssim``; NaN if False, which skips its Gaussian filters).

    Returns
    -------
    dict
        ``psnr_db``, ``psnr_paper_db``, ``ssim``, ``ssim_global`` and the fit
        ``fit_a``, ``fit_b`` (estimate → ground truth mapped to [0, 1]).
    """
    m = moments(estimate, ground_truth)
    a, b, _, _ = _unit_range_fit(m)
    mse, windowed = _fitted_pass(estimate, ground_truth, m, windowed=windowed_ssim)
    return {
        "psnr_db": _db(1.0 / mse if mse > 0 else np.inf),
        "psnr_paper_db": _psnr_paper(m),
        "ssim": windowed,
        "ssim_global": _ssim_global(m),
        "fit_a": a,
        "fit_b": b,
    }
