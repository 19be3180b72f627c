"""Benchmark "projector": our sparse footprint projector against scipy and ASTRA (CPU).

One seeded smooth phantom (``n``³ float32, n = 256, or 64 with ``--quick``) and 61 tilts
−60°…60° step 2°. Side by side in one process:

* **ours** — :class:`cryo_pipeline.ops.projector.ParallelBeamProjector` forward and
  adjoint, and :func:`cryo_pipeline.ops.wbp.weighted_backprojection_3d`; the sparse
  operator build (first construction, cached afterwards) is timed on its own row. Also
  once more pinned to one torch thread, since the baselines are single-threaded.
* **scipy** — per angle, ``scipy.ndimage.rotate(order=1, reshape=False)`` in the (z, x)
  plane and a sum along z (forward); the naive back-projection smears each image along z
  and rotates it back (adjoint); WBP = our ramp filter and angular weights, then that
  back-projection.
* **astra-linear / astra-strip** — ASTRA Toolbox CPU projectors (2D only), looped over
  the y-slices with a 2D parallel geometry: ``FP``, ``BP`` and the CPU ``FBP`` algorithm.

Every adjoint/WBP method gets the same input (our forward projection of the phantom), and
each row carries the Pearson correlation of its output with ours, as a check that all
methods compute the same thing in the same geometry.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, Self

import numpy as np
import scipy.ndimage as ndi
import torch

from bench.harness import (
    BenchResult,
    current_rss_mb,
    peak_rss_mb,
    register,
    reset_peak_rss,
    timeit,
)
from cryo_pipeline.ops.projector import ParallelBeamProjector, _cached_operators
from cryo_pipeline.ops.wbp import (
    angular_weights_rad,
    filter_tilt_series,
    weighted_backprojection_3d,
)

FULL_SIZE_PX = 256
QUICK_SIZE_PX = 64
ANGLES_DEG = np.arange(-60.0, 60.0 + 1e-9, 2.0)  # 61 tilts
SEED = 0
REPEAT = 3
#: A single baseline call estimated to take longer than this is timed on a subset of the
#: angles and extrapolated linearly (all of these methods are linear in the tilt count).
SCIPY_BUDGET_S = 180.0
#: Small case on which every method's geometry is checked against ours.
CHECK_SIZE_PX = 64
CHECK_MIN_CORRELATION = 0.99
ASTRA_KINDS = ("linear", "strip")


# --------------------------------------------------------------------------- inputs


def make_phantom(n: int, *, seed: int = SEED) -> np.ndarray:
    """Seeded smooth random ``(n, n, n)`` float32 volume, zero outside the inscribed
    (z, x) cylinder so no method loses mass at the field-of-view edge."""
    rng = np.random.default_rng(seed)
    volume = rng.standard_normal((n, n, n), dtype=np.float32)
    volume = ndi.gaussian_filter(volume, sigma=max(2.0, n / 64.0), mode="wrap")
    volume -= volume.mean()
    volume /= volume.std()
    volume *= cylinder_mask(n, n)[:, None, :]
    return volume.astype(np.float32, copy=False)


def cylinder_mask(d: int, w: int) -> np.ndarray:
    """Boolean ``(d, w)`` disc inscribed in the (z, x) plane (one pixel margin)."""
    z = np.arange(d) - (d - 1) / 2.0
    x = np.arange(w) - (w - 1) / 2.0
    radius = min(d, w) / 2.0 - 1.0
    return (z[:, None] ** 2 + x[None, :] ** 2) <= radius**2


def pearson(a, b, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of two arrays (optionally only where ``mask`` is true;
    the ``(d, w)`` mask broadcasts over the y axis of ``(d, h, w)`` volumes)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if mask is not None:
        full = np.broadcast_to(mask[:, None, :], a.shape)
        a, b = a[full], b[full]
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float("nan")


# --------------------------------------------------------------------------- scipy baseline
#
# scipy.ndimage.rotate(axes=(0, 2)) by −θ turns the volume so that summing along z gives
# our projection at +θ (detector coordinate x·cos θ − z·sin θ, DESIGN.md §1); the
# back-projection rotates the smeared image by +θ. Checked by correlation below.


def scipy_forward(volume: np.ndarray, angles_deg) -> np.ndarray:
    """``(n_tilts, h, w)``: rotate by −θ in (z, x), sum along z."""
    return np.stack(
        [ndi.rotate(volume, -float(a), axes=(0, 2), order=1, reshape=False).sum(axis=0) for a in angles_deg]
    )


def scipy_adjoint(tilt_series: np.ndarray, angles_deg, depth: int) -> np.ndarray:
    """``(d, h, w)``: smear each image along z, rotate by +θ, accumulate."""
    _, h, w = tilt_series.shape
    out = np.zeros((depth, h, w), dtype=np.float32)
    for image, angle in zip(tilt_series, angles_deg, strict=True):
        smeared = np.broadcast_to(image[None, :, :], (depth, h, w))
        out += ndi.rotate(smeared, float(angle), axes=(0, 2), order=1, reshape=False)
    return out


def scipy_wbp(tilt_series: np.ndarray, angles_deg, depth: int, *, weights_rad: np.ndarray | None = None) -> np.ndarray:
    """Our ramp filter and angular weights, then :func:`scipy_adjoint`."""
    angles = np.asarray(angles_deg, dtype=np.float64)
    weights = angular_weights_rad(angles) if weights_rad is None else weights_rad
    filtered = filter_tilt_series(torch.from_numpy(np.ascontiguousarray(tilt_series, dtype=np.float32))).numpy()
    filtered *= weights[:, None, None].astype(np.float32)
    return scipy_adjoint(filtered, angles, depth)


# --------------------------------------------------------------------------- ASTRA


def load_astra() -> tuple[Any, str | None]:
    """``(astra_module, None)``, or ``(None, reason)`` when it cannot be imported."""
    try:
        with warnings.catch_warnings():
            # third-party import-time warnings (e.g. CUDA probing) must not fail a run
            warnings.simplefilter("ignore")
            import astra
    except Exception as exc:  # noqa: BLE001 - any import failure means "unavailable"
        return None, f"{type(exc).__name__}: {exc}".strip()
    return astra, None


class AstraSliceProjector:
    """ASTRA CPU 2D parallel-beam operators applied to each y-slice of a ``zyx`` volume.

    ASTRA's 2D image is ``(rows, cols)`` = our ``(z, x)`` plane, with rows running
    downwards; its parallel-beam detector coordinate is then x·cos θ − z·sin θ for the
    same θ as ours (checked by correlation in :func:`geometry_check`).
    """

    def __init__(self, astra, shape_zyx, angles_deg, *, kind: str = "linear", detector_width_px: int | None = None):
        self.astra = astra
        d, self.h, w = (int(s) for s in shape_zyx)
        self.d, self.w = d, w
        self.n_det = int(detector_width_px or w)
        self.n_tilts = len(angles_deg)
        self._ids: list[tuple[str, int]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vol_geom = astra.create_vol_geom(d, w)
            proj_geom = astra.create_proj_geom("parallel", 1.0, self.n_det, np.radians(np.asarray(angles_deg, float)))
            self.projector_id = astra.create_projector(kind, proj_geom, vol_geom)
            self._ids.append(("projector", self.projector_id))
            self.vol_id = astra.data2d.create("-vol", vol_geom)
            self._ids.append(("data2d", self.vol_id))
            self.sino_id = astra.data2d.create("-sino", proj_geom)
            self._ids.append(("data2d", self.sino_id))
            self.fp_id = self._algorithm("FP", VolumeDataId=self.vol_id, ProjectionDataId=self.sino_id)
            self.bp_id = self._algorithm("BP", ReconstructionDataId=self.vol_id, ProjectionDataId=self.sino_id)
            self.fbp_id = self._algorithm("FBP", ReconstructionDataId=self.vol_id, ProjectionDataId=self.sino_id)

    def _algorithm(self, name: str, **data_ids: int) -> int:
        cfg = self.astra.astra_dict(name)
        cfg["ProjectorId"] = self.projector_id
        cfg.update(data_ids)
        alg_id = self.astra.algorithm.create(cfg)
        self._ids.append(("algorithm", alg_id))
        return alg_id

    def forward(self, volume: np.ndarray) -> np.ndarray:
        """``(d, h, w)`` → ``(n_tilts, h, n_det)`` with ASTRA ``FP``, slice by slice."""
        out = np.empty((self.n_tilts, volume.shape[1], self.n_det), dtype=np.float32)
        for y in range(volume.shape[1]):
            self.astra.data2d.store(self.vol_id, np.ascontiguousarray(volume[:, y, :]))
            self.astra.algorithm.run(self.fp_id)
            out[:, y, :] = self.astra.data2d.get_shared(self.sino_id)
        return out

    def _from_sinograms(self, tilt_series: np.ndarray, alg_id: int) -> np.ndarray:
        out = np.empty((self.d, tilt_series.shape[1], self.w), dtype=np.float32)
        for y in range(tilt_series.shape[1]):
            self.astra.data2d.store(self.sino_id, np.ascontiguousarray(tilt_series[:, y, :]))
            self.astra.algorithm.run(alg_id)
            out[:, y, :] = self.astra.data2d.get_shared(self.vol_id)
        return out

    def adjoint(self, tilt_series: np.ndarray) -> np.ndarray:
        """``(n_tilts, h, n_det)`` → ``(d, h, w)`` with ASTRA ``BP`` (unfiltered)."""
        return self._from_sinograms(tilt_series, self.bp_id)

    def fbp(self, tilt_series: np.ndarray) -> np.ndarray:
        """``(n_tilts, h, n_det)`` → ``(d, h, w)`` with ASTRA's CPU ``FBP`` (Ram-Lak)."""
        return self._from_sinograms(tilt_series, self.fbp_id)

    def close(self) -> None:
        """Free every ASTRA object this instance created."""
        deleters = {
            "algorithm": self.astra.algorithm.delete,
            "data2d": self.astra.data2d.delete,
            "projector": self.astra.projector.delete,
        }
        while self._ids:
            kind, obj_id = self._ids.pop()
            deleters[kind](obj_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- geometry check


def geometry_check(astra, angles_deg, *, n: int = CHECK_SIZE_PX, rows: int = 2) -> dict[str, float]:
    """Correlation of every method's forward projection and back-projection with ours
    on a small ``(n, rows, n)`` phantom: > 0.99 means the same geometry (a flipped angle
    or detector gives ≈ 0.0–0.3 here)."""
    volume = make_phantom(n, seed=SEED + 1)[:, :rows, :].copy()
    mask = cylinder_mask(n, n)
    projector = ParallelBeamProjector(volume.shape, angles_deg)
    ours_fwd = projector.forward(torch.from_numpy(volume)).numpy()
    ours_adj = projector.adjoint(torch.from_numpy(ours_fwd)).numpy()
    checks = {
        "scipy_forward": pearson(scipy_forward(volume, angles_deg), ours_fwd),
        "scipy_adjoint": pearson(scipy_adjoint(ours_fwd, angles_deg, n), ours_adj, mask),
    }
    if astra is not None:
        for kind in ASTRA_KINDS:
            with AstraSliceProjector(astra, volume.shape, angles_deg, kind=kind) as op:
                checks[f"astra-{kind}_forward"] = pearson(op.forward(volume), ours_fwd)
                checks[f"astra-{kind}_adjoint"] = pearson(op.adjoint(ours_fwd), ours_adj, mask)
    return checks


# --------------------------------------------------------------------------- measuring


def _measure(
    method: str,
    operation: str,
    fn: Callable[[], Any],
    *,
    work: float | None,
    repeat: int,
    warmup: int,
    compare: Callable[[Any], float] | None = None,
    scale: float = 1.0,
    note: str = "",
) -> dict[str, Any]:
    """One row: time ``fn``, measure its peak RSS, correlate its output with ours.

    ``scale`` multiplies the measured times (for a run on a subset of the angles).
    """
    reset_ok = reset_peak_rss()
    rss_before = current_rss_mb()
    timing = timeit(fn, repeat=repeat, warmup=warmup)
    peak = peak_rss_mb()
    seconds = timing["median_s"] * scale
    row: dict[str, Any] = {
        "method": method,
        "operation": operation,
        "seconds": seconds,
        "min_s": timing["min_s"] * scale,
        "voxels_tilts_per_s": (work / seconds) if work else None,
        "ratio_vs_ours": None,
        "ratio_min_vs_ours": None,
        "cpu_per_wall": timing["cpu_median_s"] / timing["median_s"] if timing["median_s"] > 0 else None,
        "others_cpu": timing["others_busy_cores"],
        "peak_rss_mb": peak,
        "delta_rss_mb": (peak - rss_before) if (reset_ok and rss_before is not None) else None,
        "corr_vs_ours": compare(timing["last"]) if compare is not None else None,
        "runs_s": [t * scale for t in timing["runs"]],
        "note": note,
    }
    del timing
    print(
        f"[bench projector] {method:>16s} {operation:<8s} {seconds:9.3f} s"
        + (f"  corr {row['corr_vs_ours']:.5f}" if row["corr_vs_ours"] is not None else ""),
        flush=True,
    )
    return row


def _scipy_plan(one_angle_s: float, n_tilts: int, budget_s: float) -> np.ndarray | None:
    """Indices of a subset of angles when a full call would exceed ``budget_s``, else None."""
    if one_angle_s * n_tilts <= budget_s:
        return None
    k = max(2, min(n_tilts - 1, int(budget_s // max(one_angle_s, 1e-9))))
    return np.unique(np.linspace(0, n_tilts - 1, k).round().astype(int))


@register("projector")
def run(*, quick: bool = False, budget_s: float = SCIPY_BUDGET_S, repeat: int = REPEAT) -> BenchResult:
    """Projector forward/adjoint/WBP: ours (sparse footprint, torch) vs scipy rotate vs ASTRA CPU."""
    n = QUICK_SIZE_PX if quick else FULL_SIZE_PX
    angles = ANGLES_DEG
    n_tilts = angles.size
    shape = (n, n, n)
    work = float(n**3 * n_tilts)
    mask = cylinder_mask(n, n)
    threads = torch.get_num_threads()
    notes: list[str] = []
    rows: list[dict[str, Any]] = []

    astra, astra_reason = load_astra()
    checks = geometry_check(astra, angles)

    volume = make_phantom(n)
    volume_t = torch.from_numpy(volume)

    # ---- ours: build (cache cleared before each construction), then apply
    def build() -> None:
        _cached_operators.cache_clear()
        ParallelBeamProjector(shape, angles)

    rows.append(_measure("ours", "build", build, work=None, repeat=repeat, warmup=0,
                         note="sparse operator construction (A and Aᵀ), cache cleared each time"))
    projector = ParallelBeamProjector(shape, angles)  # cached from here on
    ours_fwd_t = projector.forward(volume_t)
    ours_fwd = ours_fwd_t.numpy()
    ours_adj = projector.adjoint(ours_fwd_t).numpy()
    ours_wbp = weighted_backprojection_3d(ours_fwd, angles, volume_shape_zyx=shape)

    def cmp_fwd(out) -> float:
        return pearson(out.numpy() if isinstance(out, torch.Tensor) else out, ours_fwd)

    def cmp_adj(out) -> float:
        return pearson(out.numpy() if isinstance(out, torch.Tensor) else out, ours_adj, mask)

    def cmp_wbp(out) -> float:
        return pearson(out.numpy() if isinstance(out, torch.Tensor) else out, ours_wbp, mask)

    def ours_ops(label: str) -> None:
        rows.append(_measure(label, "forward", lambda: projector.forward(volume_t), work=work,
                             repeat=repeat, warmup=1, compare=cmp_fwd))
        rows.append(_measure(label, "adjoint", lambda: projector.adjoint(ours_fwd_t), work=work,
                             repeat=repeat, warmup=1, compare=cmp_adj))
        rows.append(_measure(label, "wbp", lambda: weighted_backprojection_3d(
            ours_fwd_t, angles, volume_shape_zyx=shape), work=work, repeat=repeat, warmup=1, compare=cmp_wbp,
            note="ramp filter + angular weights + adjoint"))

    ours_ops("ours")
    if threads > 1:
        torch.set_num_threads(1)
        try:
            ours_ops("ours (1 thread)")
        finally:
            torch.set_num_threads(threads)

    # ---- scipy baseline
    weights = angular_weights_rad(angles)
    scipy_ops = {
        "forward": (lambda idx: scipy_forward(volume, angles[idx]), cmp_fwd),
        "adjoint": (lambda idx: scipy_adjoint(ours_fwd[idx], angles[idx], n), cmp_adj),
        "wbp": (lambda idx: scipy_wbp(ours_fwd[idx], angles[idx], n, weights_rad=weights[idx]), cmp_wbp),
    }
    for operation, (op, compare) in scipy_ops.items():
        one = timeit(lambda op=op: op(np.array([n_tilts // 2])), repeat=1, warmup=0)["median_s"]
        subset = _scipy_plan(one, n_tilts, budget_s)
        if subset is None:
            rows.append(_measure("scipy", operation, lambda op=op: op(np.arange(n_tilts)), work=work,
                                 repeat=repeat, warmup=0, compare=compare,
                                 note="ndimage.rotate order=1 per angle" + (", our ramp filter" if operation == "wbp" else "")))
        else:
            k = subset.size
            sub_compare = (lambda out, s=subset: pearson(out, ours_fwd[s])) if operation == "forward" else None
            rows.append(_measure("scipy", operation, lambda op=op, s=subset: op(s), work=work, repeat=repeat,
                                 warmup=0, compare=sub_compare, scale=n_tilts / k,
                                 note=f"timed on {k}/{n_tilts} angles, extrapolated linearly"))
            notes.append(
                f"scipy {operation}: one full call was estimated at {one * n_tilts:.0f} s (> {budget_s:.0f} s), "
                f"so it was timed on {k} of the {n_tilts} angles and the time scaled by {n_tilts}/{k}."
            )

    # ---- ASTRA CPU
    if astra is None:
        notes.append(f"astra unavailable: {astra_reason}")
    else:
        for kind in ASTRA_KINDS:
            label = f"astra-{kind}"
            rows.append(_measure(label, "build", lambda kind=kind: AstraSliceProjector(astra, shape, angles, kind=kind).close(),
                                 work=None, repeat=repeat, warmup=0, note="geometry, projector, data and algorithm objects"))
            with AstraSliceProjector(astra, shape, angles, kind=kind) as op:
                rows.append(_measure(label, "forward", lambda op=op: op.forward(volume), work=work, repeat=repeat,
                                     warmup=0, compare=cmp_fwd, note="FP per y-slice"))
                rows.append(_measure(label, "adjoint", lambda op=op: op.adjoint(ours_fwd), work=work, repeat=repeat,
                                     warmup=0, compare=cmp_adj, note="BP per y-slice"))
                rows.append(_measure(label, "wbp", lambda op=op: op.fbp(ours_fwd), work=work, repeat=repeat,
                                     warmup=0, compare=cmp_wbp, note="CPU FBP (Ram-Lak) per y-slice"))

    # ---- ratios vs ours (same operation)
    ours_rows = {r["operation"]: r for r in rows if r["method"] == "ours" and r["operation"] != "build"}
    for row in rows:
        reference = ours_rows.get(row["operation"])
        if row["operation"] != "build" and reference is not None:
            row["ratio_vs_ours"] = row["seconds"] / reference["seconds"]
            row["ratio_min_vs_ours"] = row["min_s"] / reference["min_s"]

    # ---- notes
    check_text = ", ".join(f"{k} {v:.5f}" for k, v in checks.items())
    bad = [k for k, v in checks.items() if not v > CHECK_MIN_CORRELATION]
    notes.insert(0, (
        f"Geometry check ({CHECK_SIZE_PX}×2×{CHECK_SIZE_PX} phantom, the same {n_tilts} angles; Pearson "
        f"correlation with ours): {check_text}. "
        + (f"GEOMETRY MISMATCH (≤ {CHECK_MIN_CORRELATION}): {', '.join(bad)}." if bad else
           f"All > {CHECK_MIN_CORRELATION}: ASTRA (2D image = our (z, x) plane, same angles in radians, "
           "no sign flip) and scipy (rotate by −θ about y, sum along z) use our geometry.")
    ))
    notes.extend([
        (f"Volume {n}³ float32 (seeded smooth random phantom inside the inscribed (z, x) cylinder), "
        f"{n_tilts} tilts {angles[0]:g}..{angles[-1]:g}° step {angles[1] - angles[0]:g}°, detector {n} px; CPU only."),
        ("seconds = median of the timed runs (min_s the fastest); voxels_tilts_per_s = n³·n_tilts / seconds; "
        "ratio_vs_ours = seconds / ours' seconds for the same operation (> 1: slower than ours); "
        "ratio_min_vs_ours = the same with the fastest runs, the better estimate on a busy machine."),
        ("ours: 'build' is the sparse-matrix construction done on the first ParallelBeamProjector for a "
        "(shape, angles) (lru-cached afterwards); forward/adjoint/wbp are apply times with the operator cached "
        "(1 warm-up call each). Baselines have no cache and get no warm-up call."),
        (f"Threads: torch uses {threads} intra-op thread(s) here; 'ours (1 thread)' repeats it pinned to one. "
        "scipy.ndimage and ASTRA's CPU projectors are single-threaded (see cpu_per_wall = CPU time / wall time)."),
        ("others_cpu = CPU cores kept busy by other processes on the machine during that row's timed runs "
        "(/proc/stat minus this process); where it is well above 0 the machine was shared and that row's "
        "time is inflated (multi-threaded rows most)."),
        ("Every adjoint/wbp method back-projects the same tilt series (our forward projection of the phantom). "
        "corr_vs_ours = Pearson correlation with our output for that operation (adjoint/wbp inside the "
        "inscribed cylinder, which every method covers)."),
        ("ASTRA 'strip' is an area (footprint) model like ours, 'linear' is Joseph interpolation; ASTRA's FBP "
        "uses its own Ram-Lak filter and weighting, so its scale differs from ours (correlation is scale-free)."),
        ("peak_rss_mb = process high-water mark during that row (reset before each row via /proc/self/clear_refs "
        "where allowed; includes the phantom, outputs kept for checks and the cached operator); "
        "delta_rss_mb = that peak minus the RSS when the row started."),
    ])

    loads = sorted(r["others_cpu"] for r in rows if r["others_cpu"] is not None)
    if loads and loads[len(loads) // 2] > 0.25:
        notes.insert(1, (
            f"SHARED MACHINE: other processes kept {loads[0]:.1f}–{loads[-1]:.1f} CPU cores busy "
            f"(median {loads[len(loads) // 2]:.1f} of {os.cpu_count()}) while this ran, so every time here is "
            "inflated and by different amounts per row (see others_cpu; cpu_per_wall < 1 for a single-threaded "
            "row means it waited for a core); compare ratios, preferably ratio_min_vs_ours, rather than seconds."
        ))

    return BenchResult(
        name="projector",
        params={
            "quick": quick,
            "size_px": n,
            "n_tilts": n_tilts,
            "angles_deg": [float(a) for a in angles],
            "repeat": repeat,
            "seed": SEED,
            "torch_threads": threads,
            "astra_version": getattr(astra, "__version__", None) if astra is not None else None,
            "astra_unavailable_reason": astra_reason,
            "scipy_budget_s": budget_s,
            "geometry_check": checks,
        },
        rows=rows,
        notes=notes,
    )
