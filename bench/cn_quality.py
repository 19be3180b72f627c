"""Benchmark "cn_quality": the CN paper's protocol (tilt series, ±60° every 2°) through the workflow.

A hollow sphere and a mixed-shapes phantom (48 × 64 × 64, SNR 10 — the demo's sizes; the
paper used 1024 × 1024 × 256 on a GPU) are projected, reconstructed by WBP, and corrected
by ``isonet``, ``cryogen`` (both from the WBP volume, demo-scale training) and ``cn``
(demo-scale SIREN per slab), all by running the real Snakemake workflow in a temporary
folder with ``config/config.yaml``. Reported per dataset and method: paper PSNR, global
SSIM, missing-region directional FSC, seam ratio (CN) and runtime, next to the CN paper's
Table 1 (spheres: CN 31.4 dB / 0.97, IMOD 27.3; mixed shapes: CN 31.5 / 0.94, IMOD 25.8).
``--quick`` runs wbp and cn only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.harness import BenchResult, register

REPO = Path(__file__).resolve().parents[1]
PAPER_TABLE_1 = {  # (PSNR dB, SSIM) of the CN paper, Table 1
    ("spheres", "cn"): (31.4, 0.97), ("spheres", "wbp"): (27.3, None),
    ("shapes", "cn"): (31.5, 0.94), ("shapes", "wbp"): (25.8, None),
}
COLUMNS = ("dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr"
           "\tmethods\tseed\tshape_px\n")


@register("cn_quality")
def run(*, quick: bool = False) -> BenchResult:
    """CN vs WBP vs IsoNet-style vs CryoGEN on the CN paper's tilt-series protocol (CPU scale)."""
    methods = "wbp,cn" if quick else "wbp,isonet,cryogen,cn"
    workdir = Path(tempfile.mkdtemp(prefix="cryo_cn_bench_"))
    try:
        (workdir / "config").mkdir()
        config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        config["run"] = "cnbench"
        config["extract"]["cube_size_px"] = 48  # the volumes are 48 voxels deep
        config["predict"].update(tile_px=32, overlap_px=8)
        (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        (workdir / "config" / "datasets.tsv").write_text(
            COLUMNS
            + f"spheres\tsynthetic\thollow_sphere\t10.0\t-60\t60\t2\ttiltseries\t10\t{methods}\t0\t48x64x64\n"
            + f"shapes\tsynthetic\tmixed_shapes\t10.0\t-60\t60\t2\ttiltseries\t10\t{methods}\t1\t48x64x64\n")
        shutil.copytree(REPO / "profiles", workdir / "profiles")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        start = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
                               "--directory", str(workdir), "--cores", "2"], cwd=workdir, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"the workflow failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        metrics = pd.read_csv(workdir / "results" / "cnbench" / "metrics.tsv", sep="\t")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for _, row in metrics.iterrows():
        paper = PAPER_TABLE_1.get((row.dataset, row.method), (None, None))
        rows.append({"dataset": row.dataset, "method": row.method, "psnr_paper_db": round(row.psnr_paper_db, 2),
                     "ssim_global": round(row.ssim_global, 3), "dfsc_missing_mean": round(row.dfsc_missing_mean, 3),
                     "seam_ratio": None if pd.isna(row.get("seam_ratio")) else round(row.seam_ratio, 3),
                     "seam_ratio_gt": (None if pd.isna(row.get("seam_ratio_ground_truth"))
                                       else round(row.seam_ratio_ground_truth, 3)),
                     "runtime_s": None if pd.isna(row.runtime_s) else round(row.runtime_s, 1),
                     "paper_psnr_db": paper[0], "paper_ssim": paper[1]})
    notes = [f"whole workflow (2 datasets, methods {methods}) took {wall:.0f} s on this machine",
             "paper: 1024 x 1024 x 256 volumes on an NVIDIA Quadro RTX 8000; here 48 x 64 x 64 at CPU demo scale"]
    return BenchResult(name="cn_quality", params={"quick": quick, "methods": methods, "shape_zyx": [48, 64, 64],
                                                   "tilts": "-60:2:60", "snr": 10}, rows=rows, notes=notes)
