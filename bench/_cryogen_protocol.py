"""The shared protocol of the CryoGEN quality benchmarks: cases, arms, one run, mean ± sd.

A *case* is a set of ground-truth volumes with a ±60° Fourier wedge (the CryoGEN paper's
corruption, A.7); the wedged volumes are the training subtomograms (the generator sees
random crops of them) and the volumes it is scored on. An *arm* is a training method with
a :class:`TrainConfig`; each arm is trained once per seed and predicted twice, with and
without ``keep_measured``. Scores are the paper's metrics (``psnr_paper_db``,
``ssim_global``), averaged over a case's volumes.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.inference.tiled import predict_tiled
from cryo_pipeline.io.mrc import read_mrc
from cryo_pipeline.ops.metrics import psnr_paper_db, ssim_global
from cryo_pipeline.ops.phantoms import hollow_sphere_paper, rotated_map
from cryo_pipeline.ops.prism_phantom import prism_rotations
from cryo_pipeline.ops.wedge import apply_missing_wedge_3d
from cryo_pipeline.stages.simulate_volume import normalize_map
from cryo_pipeline.training.cryogen import build_generator
from cryo_pipeline.training.data import SubtomoBatches
from cryo_pipeline.training.loop import train_generator

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "data" / "real"
TILT_DEG = (-60.0, 60.0)


@dataclass(frozen=True)
class Case:
    """Ground truths and their wedged copies (float32 ``(d, h, w)`` each)."""

    name: str
    truths: tuple[np.ndarray, ...]
    wedged: tuple[np.ndarray, ...]


def _case(name: str, truths) -> Case:
    truths = tuple(np.ascontiguousarray(t, dtype=np.float32) for t in truths)
    wedged = tuple(apply_missing_wedge_3d(t, tilt_min_deg=TILT_DEG[0], tilt_max_deg=TILT_DEG[1]).astype(np.float32)
                   for t in truths)
    return Case(name, truths, wedged)


def sphere_case(n_px: int = 64) -> Case:
    """The calibrated hollow sphere (paper A.7.1 scaled to ``n_px``³)."""
    return _case(f"sphere{n_px}", [hollow_sphere_paper((n_px,) * 3)])


def prism_case(*, box_px: int = 96, seeds=range(10), name: str = "prism") -> Case:
    """The calibrated prism: one ``box_px``³ volume per rotation seed (paper A.7.2)."""
    return _case(name, prism_rotations(box_px, seeds=seeds))


def map_case(file_name: str, name: str, *, rotation_seed: int = 0) -> Case:
    """A real map from ``shared/data/real``: seeded random rotation, solvent 0, peak 1 (simulate_volume)."""
    path = REAL / file_name
    volume = read_mrc(path, voxel_size_angstrom=1.0).data
    return _case(name, [normalize_map(rotated_map(volume, seed=rotation_seed), source=str(path))])


CASES = {
    "sphere": sphere_case,
    "prism": prism_case,
    "betagal": lambda: map_case("betagal_ngl_100px_3.54A.mrc", "betagal"),
    # held back: exploration only, never reported as a result of tuning
    "ribosome": lambda: map_case("ribosome70S_aspire_65px.mrc", "ribosome", rotation_seed=3),
    "prism_heldback": lambda: prism_case(box_px=64, seeds=range(100, 105), name="prism_heldback"),
}


def demo_train_config(**overrides) -> TrainConfig:
    """The demo's ``train`` section (config/config.yaml) on the CPU, with ``overrides``."""
    section = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]
    return TrainConfig(**{**section, **overrides})


def yaml_train_overrides(name: str) -> dict:
    """The ``train`` keys of ``config/<name>`` (an overlay such as paper_literal.yaml)."""
    return dict(yaml.safe_load((REPO / "config" / name).read_text()).get("train", {}))


def _training_batches(case: Case, crop_px: int) -> SubtomoBatches:
    """The wedged volumes as training cubes (common edge), normalised by their joint mean and std."""
    stacked = np.stack(case.wedged)
    edge = min(min(v.shape) for v in case.wedged)
    cubes = np.stack([v[:edge, :edge, :edge] for v in case.wedged])
    return SubtomoBatches(cubes, normalization=(float(stacked.mean()), float(stacked.std())), crop_px=crop_px,
                          source=case.name)


def _scores(case: Case, volumes) -> tuple[float, float]:
    psnr = [psnr_paper_db(v, t) for v, t in zip(volumes, case.truths, strict=True)]
    ssim = [ssim_global(v, t) for v, t in zip(volumes, case.truths, strict=True)]
    return float(np.mean(psnr)), float(np.mean(ssim))


def run_arm(case: Case, *, method: str, cfg: TrainConfig) -> dict:
    """Train ``method`` on ``case`` and score it with and without keep_measured.

    Returns ``{"keep_measured": (psnr, ssim), "raw": (psnr, ssim), "seconds": train + predict}``;
    ``method="corrupted"`` scores the wedged volumes themselves (no training).
    """
    if method == "corrupted":
        score = _scores(case, case.wedged)
        return {"keep_measured": score, "raw": score, "seconds": 0.0}
    start = time.perf_counter()
    batches = _training_batches(case, cfg.crop_px)
    result = train_generator(batches, cfg=cfg, method=method, tilt_range_deg=TILT_DEG, device=torch.device("cpu"))
    g = build_generator(cfg)
    g.load_state_dict(result.generator)
    g.eval()
    out = {}
    for key, keep in (("keep_measured", True), ("raw", False)):
        preds = [predict_tiled(v, g, tile_px=64, overlap_px=16, batch_size=2, normalization=batches.normalization,
                               keep_measured=keep, tilt_range_deg=TILT_DEG, progress=False) for v in case.wedged]
        out[key] = _scores(case, preds)
    out["seconds"] = time.perf_counter() - start
    return out


CRYOGEN_ONLY = frozenset({
    "disc_channels", "spectral_norm", "adversarial_loss", "gradient_penalty_weight", "adversarial_weight",
    "adversarial_weight_start", "critic_input", "critic_features", "critic_steps", "r1_weight",
    "learning_rate_energy", "noise_scale_real", "noise_scale_generator", "sigma_n", "consistency_weight_final",
    "consistency_target"})
"""TrainConfig keys the IsoNet-style baseline ignores (no energy model, no data term, λ fixed, x̃ filled)."""


def run_arm_cached(case: Case, *, arm: str, method: str, cfg: TrainConfig, cache: Path | None) -> dict:
    """:func:`run_arm`, reusing a run of ``cache`` (JSON lines) with the same case, arm, method and config.

    A benchmark made of hours of runs can then be completed or extended piece by piece;
    a new run is appended to ``cache`` as soon as it is done. ``cache=None``: always run.
    """
    train = cfg.model_dump(mode="json")
    if method != "cryogen":  # what the IsoNet-style loop never reads does not make a run different
        train = {k: v for k, v in train.items() if k not in CRYOGEN_ONLY}
    key = {"case": case.name, "arm": arm, "method": method, "seed": cfg.seed, "train": train}
    if cache is not None and cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if {k: record.get(k) for k in key} == key:
                return record
    record = {**key, **run_arm(case, method=method, cfg=cfg)}
    if cache is not None:
        with cache.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return record


def mean_sd(values) -> str:
    """``mean ± sd`` (sample sd; a single value has none)."""
    values = list(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{mean:.2f} ± {sd:.2f}"


def summarize(runs: list[dict], *, keys=("case", "arm")) -> list[dict]:
    """One row per (case, arm): mean ± sd over seeds of both score pairs, and seconds."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in keys), []).append(run)
    rows = []
    for key, group in groups.items():
        row = dict(zip(keys, key, strict=True))
        row["seeds"] = len(group)
        for score in ("keep_measured", "raw"):
            row[f"psnr_{score}"] = mean_sd(r[score][0] for r in group)
            row[f"ssim_{score}"] = mean_sd(r[score][1] * 100 for r in group)  # in %, for 2 decimals
        row["seconds_mean"] = round(statistics.fmean(r["seconds"] for r in group), 1)
        rows.append(row)
    return rows
