"""Benchmark "cryogen_speed": training and tiled-inference throughput of CryoGEN.

* steps/s of one CryoGEN step (Algorithm 1: energy-model update + generator update with
  the adversarial, data and consistency terms) and of one IsoNet-style step, and the
  ratio of a CryoGEN step to one plain supervised step of the same U-Net++ on the same
  batch (MSE to a target, one forward + backward + Adam step). Goal: ratio ≤ 3.
* tiled inference: ``predict_tiled`` on a volume (tiles with overlap, blending, whole-
  tomogram normalisation) against the raw batched model time on exactly the same tiles,
  the two **interleaved** in one process (alternating order, after a warm-up of each; the
  ratio is the median over rounds of tiled / raw). Goal: ratio ≤ 1.3. Voxels per second of
  the tiled inference. (An earlier version timed all raw runs, then all tiled runs, and
  reported 1.33×: the second block ran on a busier machine.)

Full: the demo's CPU network (base 8, depth 2) and the paper-scale one (base 16, depth 3),
crops 32³ (batch 2) for training, a 128³ volume with 64³ tiles for inference. ``--quick``:
the small network only, fewer repeats, a 64³ volume.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from bench.harness import BenchResult, register
from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.inference.tiled import predict_tiled
from cryo_pipeline.ops.blending import tile_origins_3d
from cryo_pipeline.training.cryogen import CryoGenStep, build_energy_model, build_generator


def _median_step_s(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _training_rows(cfg: TrainConfig, repeat: int) -> list[dict]:
    torch.manual_seed(0)
    batch = torch.randn(cfg.batch_size, 1, cfg.crop_px, cfg.crop_px, cfg.crop_px)
    rows, seconds = [], {}
    for method in ("cryogen", "isonet"):
        g = build_generator(cfg)
        e = build_energy_model(cfg) if method == "cryogen" else None
        step = CryoGenStep(cfg=cfg, method=method, tilt_range_deg=(-60.0, 60.0), device=torch.device("cpu"),
                           generator_module=g, energy_module=e, opt_g=torch.optim.Adam(g.parameters()),
                           opt_e=torch.optim.Adam(e.parameters()) if e is not None else None)
        rng = torch.Generator().manual_seed(0)
        seconds[method] = _median_step_s(lambda s=step: s.run(batch, lam=1.0, rng=rng), repeat)
    g = build_generator(cfg)
    opt = torch.optim.Adam(g.parameters())
    target = torch.randn_like(batch)

    def supervised() -> None:
        opt.zero_grad(set_to_none=True)
        (g(batch) - target).pow(2).mean().backward()
        opt.step()

    seconds["supervised"] = _median_step_s(supervised, repeat)
    for method, s in seconds.items():
        rows.append({"part": "training", "network": f"base {cfg.base_channels}, depth {cfg.depth}",
                     "what": f"{method} step (batch {cfg.batch_size}×{cfg.crop_px}³)", "seconds": round(s, 4),
                     "per_second": round(1.0 / s, 3), "ratio": round(s / seconds["supervised"], 2)})
    return rows


def _inference_rows(cfg: TrainConfig, shape: tuple[int, int, int], tile: int, overlap: int, repeat: int) -> list[dict]:
    """Raw batched model vs ``predict_tiled`` on the same tiles, timed **interleaved** in this process.

    Rounds alternate the order (raw, tiled), (tiled, raw), ... after one warm-up call of each, so
    a machine that gets busier or quieter during the run (or a cache that warms) affects both
    arms alike; the ratio is the median over rounds of tiled / raw of the same round.
    """
    g = build_generator(cfg).eval()
    volume = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    origins = tile_origins_3d(shape, tile_zyx=(tile,) * 3, overlap_zyx=(overlap,) * 3)
    tiles = torch.from_numpy(np.stack([volume[z:z + tile, y:y + tile, x:x + tile] for z, y, x in origins]))[:, None]
    batch = 4

    def raw() -> None:
        with torch.inference_mode():
            for i in range(0, len(tiles), batch):
                g(tiles[i:i + batch])

    def tiled() -> None:
        predict_tiled(volume, g, tile_px=tile, overlap_px=overlap, batch_size=batch, progress=False)

    arms = {"raw": raw, "tiled": tiled}
    for fn in arms.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {"raw": [], "tiled": []}
    for r in range(repeat):
        for name in (("raw", "tiled") if r % 2 == 0 else ("tiled", "raw")):
            start = time.perf_counter()
            arms[name]()
            times[name].append(time.perf_counter() - start)
    raw_s, tiled_s = float(np.median(times["raw"])), float(np.median(times["tiled"]))
    pair_ratio = float(np.median(np.asarray(times["tiled"]) / np.asarray(times["raw"])))
    net = f"base {cfg.base_channels}, depth {cfg.depth}"
    what = f"{shape[0]}³ volume, {len(origins)} tiles of {tile}³, overlap {overlap}"
    return [
        {"part": "inference", "network": net, "what": f"raw batched model, {what}", "seconds": round(raw_s, 3),
         "per_second": round(volume.size / raw_s), "ratio": 1.0, "runs_s": times["raw"]},
        {"part": "inference", "network": net, "what": f"predict_tiled, {what}", "seconds": round(tiled_s, 3),
         "per_second": round(volume.size / tiled_s), "ratio": round(pair_ratio, 3), "runs_s": times["tiled"]},
    ]


@register("cryogen_speed")
def run(*, quick: bool = False) -> BenchResult:
    """Training step costs and tiled-inference overhead on this machine's CPU."""
    small = TrainConfig(crop_px=32, base_channels=8, depth=2, batch_size=2)
    paper = TrainConfig(crop_px=32, base_channels=16, depth=3, batch_size=2)
    networks = [small] if quick else [small, paper]
    repeat = 2 if quick else 7
    rows: list[dict] = []
    for cfg in networks:
        rows += _training_rows(cfg, repeat)
        rows += _inference_rows(cfg, (64,) * 3 if quick else (128,) * 3, 64 if not quick else 32, 16, repeat)
    return BenchResult(
        name="cryogen_speed",
        params={"quick": quick, "threads": torch.get_num_threads(), "repeat": repeat},
        rows=rows,
        notes=[
            "training ratio: step time over one plain supervised step (MSE, forward+backward+Adam) of the same "
            "U-Net++ on the same batch; goal ≤ 3 for CryoGEN.",
            "inference ratio: predict_tiled (whole-tomogram normalisation, tiling, cosine-window blending, "
            "cropping) over the raw batched forward passes on the same tiles, timed interleaved (alternating "
            "order) in one process; median over rounds of the per-round ratio; goal ≤ 1.3. per_second = voxels/s.",
            "CPU only (no GPU in this session); medians of the repeats after one warm-up call; shared machine "
            f"(load average {os.getloadavg()[0]:.1f} at the end).",
        ],
    )
