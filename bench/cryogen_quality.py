"""Benchmark "cryogen_quality": the CryoGEN paper's shape protocol (A.7.1, A.7.2) on this CPU.

* sphere: hollow sphere, outer diameter 70, thickness 4, in 140³; ±60° Fourier wedge;
  ten 96³ subtomograms at random origins, random 32³ crops for training.
* prism: triangular prism (thickness 20) in 96³ under ten seeded random rotations, each
  wedged; the whole volumes are the subtomograms.

For each: corrupted / isonet / cryogen with the same network, steps and data, trained on
the CPU here, predicted with tiles and data consistency (keep_measured), scored with the
paper's PSNR (I_m = max of the ground truth) and global SSIM, next to the paper's Table 1
(sphere: corrupted 21.12 / 0.8113, IsoNet 22.98 / 0.8770, CryoGEN 29.19 / 0.9706; prism:
14.82 / 0.6931, 19.11 / 0.8857, 32.69 / 0.9949). For the prism the metrics are the mean
over the ten rotations.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.harness import BenchResult, register
from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.inference.tiled import predict_tiled
from cryo_pipeline.io.subtomo_store import SubtomoStoreWriter
from cryo_pipeline.ops.metrics import psnr_paper_db, ssim_global
from cryo_pipeline.ops.phantoms import hollow_sphere, triangular_prism
from cryo_pipeline.ops.wedge import apply_missing_wedge_3d
from cryo_pipeline.stages import train_cryogen
from cryo_pipeline.training.cryogen import build_generator

PAPER = {
    "sphere": {"corrupted": (21.12, 0.8113), "isonet": (22.98, 0.8770), "cryogen": (29.19, 0.9706)},
    "prism": {"corrupted": (14.82, 0.6931), "isonet": (19.11, 0.8857), "cryogen": (32.69, 0.9949)},
}


def _write_store(path: Path, cubes: list[np.ndarray], stats: tuple[float, float]) -> None:
    mean, std = stats
    with SubtomoStoreWriter(path, n_cubes=len(cubes), cube_px=cubes[0].shape[0], voxel_size_angstrom=10.0,
                            tilt_min_deg=-60.0, tilt_max_deg=60.0, source_tomogram="bench",
                            normalization={"mean": mean, "std": std, "mean_in_mask": mean,
                                           "std_in_mask": std}) as writer:
        for i, cube in enumerate(cubes):
            writer.write(i, cube)


def _datasets(quick: bool):
    n = 64 if quick else 140
    sphere = hollow_sphere((n,) * 3, outer_diameter_px=70.0 * n / 140, thickness_px=max(2.0, 4.0 * n / 140))
    sphere_wedged = apply_missing_wedge_3d(sphere, tilt_min_deg=-60, tilt_max_deg=60)
    cube = 48 if quick else 96
    rng = np.random.default_rng(0)
    origins = rng.integers(0, n - cube + 1, size=(10, 3))
    yield "sphere", [sphere], [sphere_wedged], [sphere_wedged[z:z + cube, y:y + cube, x:x + cube] for z, y, x in origins]
    m = 48 if quick else 96
    prisms = [triangular_prism((m,) * 3, side_px=48.0 * m / 96, thickness_px=20.0 * m / 96, seed=s) for s in range(10)]
    wedged = [apply_missing_wedge_3d(p, tilt_min_deg=-60, tilt_max_deg=60) for p in prisms]
    yield "prism", prisms, wedged, wedged


@register("cryogen_quality")
def run(*, quick: bool = False) -> BenchResult:
    """Train isonet and cryogen on the paper's shapes on the CPU; compare with Table 1."""
    steps = (2, 25) if quick else (4, 100)
    cfg = TrainConfig(crop_px=32, base_channels=8, depth=2, batch_size=2, epochs=steps[0], steps_per_epoch=steps[1],
                      learning_rate=1e-3, learning_rate_energy=1e-3)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, truths, corrupted, cubes in _datasets(quick):
            stats = (float(np.mean([c.mean() for c in corrupted])), float(np.mean([c.std() for c in corrupted])))
            store = Path(tmp) / f"{name}.zarr"
            _write_store(store, cubes, stats)
            scores = {"corrupted": ([psnr_paper_db(c, t) for c, t in zip(corrupted, truths, strict=True)],
                                    [ssim_global(c, t) for c, t in zip(corrupted, truths, strict=True)], 0.0)}
            for method in ("isonet", "cryogen"):
                out = Path(tmp) / f"{name}_{method}"
                start = time.perf_counter()
                row = DatasetRow(dataset=name, kind="tomogram", source="bench.mrc", tilt_min_deg=-60.0,
                                 tilt_max_deg=60.0)
                train_cryogen.run(store=store, dataset=row, cfg=cfg, method=method, out_model=out / "model.pt",
                                  out_losses=out / "losses.tsv", checkpoint_dir=out / "ck")
                g = build_generator(cfg)
                g.load_state_dict(torch.load(out / "model.pt", weights_only=False)["generator"])
                g.eval()
                preds = [predict_tiled(c, g, tile_px=min(64, c.shape[0] // 4 * 4), overlap_px=16, batch_size=2,
                                       normalization=stats, keep_measured=True, tilt_range_deg=(-60, 60),
                                       progress=False) for c in corrupted]
                seconds = time.perf_counter() - start
                scores[method] = ([psnr_paper_db(p, t) for p, t in zip(preds, truths, strict=True)],
                                  [ssim_global(p, t) for p, t in zip(preds, truths, strict=True)], seconds)
            for method, (psnrs, ssims, seconds) in scores.items():
                paper_psnr, paper_ssim = PAPER[name][method]
                rows.append({"shape": name, "method": method, "psnr_paper_db": round(float(np.mean(psnrs)), 2),
                             "ssim_global": round(float(np.mean(ssims)), 4), "paper_psnr_db": paper_psnr,
                             "paper_ssim": paper_ssim, "train_predict_s": round(seconds, 1)})
    return BenchResult(
        name="cryogen_quality",
        params={"quick": quick, "train": cfg.model_dump(mode="json"), "threads": torch.get_num_threads()},
        rows=rows,
        notes=[
            "Our numbers: U-Net++ base 8 / depth 2, 32³ crops, batch 2, "
            f"{steps[0] * steps[1]} steps, lr 1e-3, on this machine's CPU; inference with 64³ tiles (overlap 16) "
            "and keep_measured (the input's measured Fourier region is put back).",
            "Paper numbers: CryoGEN Table 1 (GPU; training budget not stated).",
            "Prism: mean over the ten rotated copies (one model trained on all ten).",
        ],
    )
