"""Benchmark "validation_rank": do the no-ground-truth scores rank methods as the ground truth does?

Simulated datasets with ground truth — phantoms and a real map — are projected over
±76° (2° steps, Gaussian noise at the given SNR) by the default simulation projector,
every method sees the working range ±60°, and the real Snakemake workflow runs
``wbp, isonet, cryogen, cn`` on the whole series and on its even and odd halves
(``halves: alternate``), with the full-range reference from ±76°
(``reference.method``, default non-negative SIRT). Each (dataset, method) pair then has
ground-truth scores (``psnr_db``, ``dfsc_missing_mean``, ``fsc_resolution_angstrom``)
and no-ground-truth scores (``band_fsc_mean``, ``heldout_ncc_mean``, the half-map FSC
resolution and wedge FSC, fidelity, isotropy). Printed: the pairs, and the Spearman
rank correlation of each no-ground-truth score with its ground-truth counterpart,
pooled over all pairs and within each dataset. Also the half-map runtime factor:
(jobs of the whole series + both halves) / (jobs of the whole series), per method,
from Snakemake's benchmark files (both measured in the same run).

``--quick``: two small datasets (32 × 48 × 48 phantom, the 65³ ribosome), 8 pairs,
shorter training — what the slow test runs.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import spearmanr

from bench.harness import BenchResult, register
from cryo_pipeline.report.runtimes import method_job_seconds, read_benchmarks

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
METHODS = ("wbp", "isonet", "cryogen", "cn")
HEADER = ("dataset", "kind", "source", "voxel_size_angstrom", "tilt_min_deg", "tilt_max_deg", "tilt_step_deg",
          "corruption", "snr", "methods", "seed", "shape_px", "reference_tilt_min_deg", "reference_tilt_max_deg",
          "halves")
PAIRS = (  # (no-ground-truth score, higher is better?, ground-truth score, higher is better?)
    ("band_fsc_mean", True, "dfsc_missing_mean", True),
    ("band_fsc_mean", True, "psnr_db", True),
    ("heldout_ncc_mean", True, "dfsc_missing_mean", True),
    ("heldout_ncc_mean", True, "psnr_db", True),
    ("halfmap_fsc_resolution_angstrom", False, "fsc_resolution_angstrom", False),
    ("halfmap_fsc_resolution_angstrom", False, "psnr_db", True),
    ("halfmap_dfsc_missing_mean", True, "dfsc_missing_mean", True),
    ("measured_region_fsc_mean", True, "psnr_db", True),
    ("isotropy_z_x", True, "dfsc_missing_mean", True),
)


def datasets(quick: bool) -> list[dict]:
    """The sheet rows: phantoms and real maps, ±60° working, ±76° reference, halves."""
    common = {"kind": "synthetic", "tilt_min_deg": -60, "tilt_max_deg": 60, "tilt_step_deg": 2,
              "corruption": "tiltseries", "snr": 5, "methods": ",".join(METHODS), "reference_tilt_min_deg": -76,
              "reference_tilt_max_deg": 76, "halves": "alternate"}
    ribosome = {**common, "dataset": "ribosome", "source": str(REAL / "ribosome70S_aspire_65px.mrc"),
                "voxel_size_angstrom": 5.0, "seed": 3, "shape_px": ""}
    if quick:
        return [{**common, "dataset": "shapes", "source": "mixed_shapes", "voxel_size_angstrom": 10.0, "seed": 1,
                 "shape_px": "32x48x48"}, ribosome]
    return [
        {**common, "dataset": "shapes", "source": "mixed_shapes", "voxel_size_angstrom": 10.0, "seed": 1,
         "shape_px": "48x64x64"},
        {**common, "dataset": "spheres", "source": "hollow_sphere", "voxel_size_angstrom": 10.0, "seed": 0,
         "shape_px": "48x64x64"},
        ribosome,
    ]


def _config(quick: bool, reference_method: str) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["run"] = "rank"
    config["extract"]["cube_size_px"] = 32
    config["predict"].update(tile_px=32, overlap_px=8)
    config.setdefault("reference", {})["method"] = reference_method
    if quick:
        config["train"].update(epochs=2, steps_per_epoch=25)
        config["cn"].update(seed_iterations=150, slab_iterations=75)
    return config


def run_workflow(workdir: Path, rows: list[dict], config: dict, *, cores: int = 2) -> float:
    """Write the sheet and config into ``workdir`` and run the whole workflow there; wall seconds."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    config = {**config, "datasets": "config/datasets.tsv"}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    lines = ["\t".join(HEADER)] + ["\t".join(str(row.get(c, "")) for c in HEADER) for row in rows]
    (workdir / "config" / "datasets.tsv").write_text("\n".join(lines) + "\n")
    if not (workdir / "profiles").exists():
        shutil.copytree(REPO / "profiles", workdir / "profiles")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(workdir), "--cores", str(cores)], cwd=workdir, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the workflow failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return time.perf_counter() - start


def rank_agreement(metrics: pd.DataFrame) -> list[dict]:
    """Spearman ρ of each score pair of :data:`PAIRS`: pooled over all rows and per dataset (mean, min).

    A score *tracks* the ground truth when its within-dataset ρ averages ≥ 0.8: the choice a
    user makes is between methods on one dataset, and a score's level also depends on the
    dataset (how good its reference is), which the pooled ρ mixes in; both are printed.
    """
    out = []
    for score, score_up, truth, truth_up in PAIRS:
        if score not in metrics or truth not in metrics:  # a run without that score
            continue
        usable = metrics[np.isfinite(metrics[score]) & np.isfinite(metrics[truth])]
        if len(usable) < 3:
            continue
        sign = (1 if score_up else -1) * (1 if truth_up else -1)
        pooled = sign * spearmanr(usable[score], usable[truth]).statistic
        within = [sign * spearmanr(g[score], g[truth]).statistic for _, g in usable.groupby("dataset") if len(g) >= 3]
        within = [w for w in within if math.isfinite(w)]
        within_mean = float(np.mean(within)) if within else math.nan
        out.append({"score": score, "ground_truth": truth, "n_pairs": len(usable), "spearman_pooled": pooled,
                    "spearman_within_mean": within_mean,
                    "spearman_within_min": float(np.min(within)) if within else math.nan,
                    "tracks": within_mean >= 0.8})  # False for NaN (no dataset with 3 finite pairs)
    return out


def halves_runtime_factor(benchmarks_root: Path, rows: list[dict]) -> dict[str, float]:
    """Per method: (its jobs on the whole series + on both halves) / (its jobs on the whole series)."""
    names = {}
    for row in rows:
        for name in (row["dataset"], f"{row['dataset']}__even", f"{row['dataset']}__odd"):
            names[name] = METHODS
    seconds = method_job_seconds(read_benchmarks(benchmarks_root, names))
    factors = {}
    for method in METHODS:
        whole = sum(seconds.get((r["dataset"], method), 0.0) for r in rows)
        halves = sum(seconds.get((f"{r['dataset']}__{h}", method), 0.0) for r in rows for h in ("even", "odd"))
        factors[method] = (whole + halves) / whole if whole > 0 else math.nan
    return factors


def measure(*, quick: bool, reference_method: str = "sirt", keep: Path | None = None) -> dict:
    """Run the workflow and return the metric rows, the rank agreement and the runtime factors."""
    rows = datasets(quick)
    workdir = keep or Path(tempfile.mkdtemp(prefix="cryo_rank_bench_"))
    try:
        wall = run_workflow(workdir, rows, _config(quick, reference_method))
        metrics = pd.read_csv(workdir / "results" / "rank" / "metrics.tsv", sep="\t")
        factors = halves_runtime_factor(workdir / "benchmarks" / "rank", rows)
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    metrics = metrics[metrics["method"].isin(METHODS)].reset_index(drop=True)
    return {"metrics": metrics, "agreement": rank_agreement(metrics), "factors": factors, "wall_s": wall}


@register("validation_rank")
def run(*, quick: bool = False) -> BenchResult:
    """Spearman agreement of the validation scores with the ground truth, and the half-map runtime factor."""
    result = measure(quick=quick)
    columns = ["dataset", "method", "psnr_db", "dfsc_missing_mean", "fsc_resolution_angstrom", "band_fsc_mean",
               "heldout_ncc_mean", "halfmap_fsc_resolution_angstrom", "halfmap_dfsc_missing_mean",
               "measured_region_fsc_mean", "isotropy_z_x"]
    table = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
             for r in result["metrics"][columns].to_dict("records")]
    agreement = [{"dataset": "ALL", "method": f"{a['score']} ~ {a['ground_truth']}",
                  "spearman_pooled": round(a["spearman_pooled"], 3),
                  "spearman_within_mean": round(a["spearman_within_mean"], 3),
                  "spearman_within_min": round(a["spearman_within_min"], 3), "n_pairs": a["n_pairs"],
                  "tracks_ground_truth": "yes" if a["tracks"] else "NO"} for a in result["agreement"]]
    notes = [f"whole workflow ({len(datasets(quick))} datasets x {len(METHODS)} methods, whole series + 2 halves "
             f"each) took {result['wall_s']:.0f} s on this machine (2 cores, shared with other jobs)",
             "half-map runtime factor (whole + halves) / whole, per method's own jobs, same run: "
             + ", ".join(f"{m} {f:.2f}" for m, f in result["factors"].items()),
             "a score 'tracks' the ground truth when its Spearman rho within a dataset (between methods) averages "
             ">= 0.8; the pooled rho over all pairs is printed beside it; higher-is-better signs are aligned "
             "(resolutions in Å: lower is better)"]
    return BenchResult(name="validation_rank", params={"quick": quick, "methods": ",".join(METHODS),
                                                        "working": "-60:2:60", "reference": "-76:2:76", "snr": 5,
                                                        "reference_method": "sirt"},
                       rows=table + agreement, notes=notes)
