"""The outer training loop: epochs, schedules, checkpoints, resume, loss log, final model.

A checkpoint (models, optimisers, schedulers, every random state of every process, the
step, the loss history and the config) is written atomically at the end of every epoch to
``<checkpoint_dir>/last.pt``. Starting again with the same config resumes from it: the
step counter, learning-rate schedule and λ schedule continue where they stopped.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import cryo_pipeline
from cryo_pipeline.config.methods import CRYOGEN, ISONET
from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.io.model_files import generator_architecture, load_checkpoint, save_checkpoint, save_generator_file
from cryo_pipeline.io.tables import write_loss_table
from cryo_pipeline.models.unetpp import check_divisible
from cryo_pipeline.training.checkpoint import restore_rng_state, rng_state
from cryo_pipeline.training.cryogen import CryoGenStep, build_energy_model, build_generator, check_finite
from cryo_pipeline.training.data import SubtomoBatches
from cryo_pipeline.training.devices import resolve_device
from cryo_pipeline.training.distributed import (
    broadcast_parameters,
    gather_objects,
    setup_process_group,
    teardown_process_group,
)
from cryo_pipeline.training.memory import check_training_memory, free_cuda_bytes
from cryo_pipeline.training.schedules import consistency_weight, warmup_linear_decay

log = logging.getLogger(__name__)


def _lr_lambda(cfg: TrainConfig):
    total = cfg.epochs * cfg.steps_per_epoch
    return lambda step: warmup_linear_decay(step, total_steps=total, warmup_fraction=cfg.warmup_fraction)


def train(
    *,
    store: Path,
    cfg: TrainConfig,
    method: str,
    out_model: Path,
    out_losses: Path,
    checkpoint_dir: Path,
    table: Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Train g_θ on a subtomogram store; write the model file and the loss table.

    Returns a summary (steps, seconds, device, steps per second, resumed-from step).
    """
    device = resolve_device(device)
    group = setup_process_group(use_cuda=device.type == "cuda")
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        return _train(store=store, cfg=cfg, method=method, out_model=out_model, out_losses=out_losses,
                      checkpoint_dir=checkpoint_dir, table=table, device=device, group=group)
    finally:
        teardown_process_group(group)


def _train(*, store, cfg, method, out_model, out_losses, checkpoint_dir, table, device, group) -> dict[str, Any]:
    try:
        check_divisible((cfg.crop_px,) * 3, 2**cfg.depth)
    except ValueError as err:
        raise ValueError(f"train.crop_px ({cfg.crop_px}) does not fit train.depth ({cfg.depth}): {err}") from None
    batches = SubtomoBatches(Path(store), crop_px=cfg.crop_px, table=table)
    if device.type == "cuda":  # stop before the first step if the crop/batch cannot fit, suggesting one that does
        estimate = check_training_memory(cfg, free_cuda_bytes(device), method=method)
        log.info("predicted GPU memory of training: %.2f GiB", estimate / 2**30)
    torch.manual_seed(cfg.seed)
    g = build_generator(cfg).to(device)
    e = build_energy_model(cfg).to(device) if method == CRYOGEN else None
    broadcast_parameters(g, group)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.learning_rate)
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, _lr_lambda(cfg))
    opt_e = sched_e = None
    if e is not None:
        broadcast_parameters(e, group)
        opt_e = torch.optim.Adam(e.parameters(), lr=cfg.learning_rate_energy, betas=(0.5, 0.999))
        sched_e = torch.optim.lr_scheduler.LambdaLR(opt_e, _lr_lambda(cfg))
    rng = torch.Generator().manual_seed(cfg.seed + 1000 * group.rank)
    expected = {**cfg.model_dump(mode="json"), "method": method}
    checkpoint = Path(checkpoint_dir) / "last.pt"
    start_step, history = 0, []
    if checkpoint.is_file():
        state = load_checkpoint(checkpoint, expected_config=expected, map_location=device)
        g.load_state_dict(state["generator"])
        opt_g.load_state_dict(state["opt_g"])
        sched_g.load_state_dict(state["sched_g"])
        if e is not None:
            e.load_state_dict(state["energy"])
            opt_e.load_state_dict(state["opt_e"])
            sched_e.load_state_dict(state["sched_e"])
        # each process continues its own random streams (rank 0's alone would make every rank draw the same data)
        per_rank = state.get("rank_rng") or [{"generator_rng": state["generator_rng"], "rng": state["rng"]}]
        if group.rank < len(per_rank):
            rng.set_state(per_rank[group.rank]["generator_rng"])
            restore_rng_state(per_rank[group.rank]["rng"])
        else:
            log.warning("checkpoint %s holds random states of %d process(es); process %d starts fresh streams",
                        checkpoint, len(per_rank), group.rank)
            rng.manual_seed(cfg.seed + 1000 * group.rank + int(state["step"]))
        start_step, history = int(state["step"]), list(state["history"])
        log.info("resuming %s training from %s at step %d", method, checkpoint, start_step)
    stepper = CryoGenStep(cfg=cfg, method=method, tilt_range_deg=batches.tilt_range_deg, device=device,
                          generator_module=g, energy_module=e, opt_g=opt_g, opt_e=opt_e, group=group)
    total = cfg.epochs * cfg.steps_per_epoch
    log.info("%s: %d training cubes, crop %d, %d steps (%d epochs x %d), batch %d, device %s, %d process(es)",
             method, batches.n_cubes, cfg.crop_px, total, cfg.epochs, cfg.steps_per_epoch, cfg.batch_size,
             device, group.world_size)
    g.train()
    if e is not None:
        e.train()
    started = time.perf_counter()
    last_good = checkpoint if checkpoint.is_file() else None
    for step in tqdm(range(start_step, total), initial=start_step, total=total, desc=method, unit="step",
                     disable=not group.is_main or None):
        epoch = step // cfg.steps_per_epoch
        lam = cfg.consistency_weight if method == ISONET else consistency_weight(
            step, steps_per_epoch=cfg.steps_per_epoch, total_steps=total,
            start=cfg.consistency_weight, final=cfg.consistency_weight_final)
        tick = time.perf_counter()
        losses = stepper.run(batches.draw(cfg.batch_size, rng).to(device), lam=lam, rng=rng)
        check_finite(losses, step=step, last_checkpoint=last_good)
        history.append((step, epoch, losses.energy, losses.adversarial, losses.data, losses.consistency, lam,
                        sched_g.get_last_lr()[0], time.perf_counter() - tick))
        sched_g.step()
        if sched_e is not None:
            sched_e.step()
        if (step + 1) % cfg.steps_per_epoch == 0:
            # collective: every process hands over its random states, rank 0 writes them
            rank_rng = gather_objects({"generator_rng": rng.get_state(), "rng": rng_state()}, group)
            if group.is_main:
                state = {"config": expected, "step": step + 1, "history": history, "generator": g.state_dict(),
                         "opt_g": opt_g.state_dict(), "sched_g": sched_g.state_dict(),
                         "generator_rng": rng.get_state(), "rng": rng_state(), "rank_rng": rank_rng}
                if e is not None:
                    state.update(energy=e.state_dict(), opt_e=opt_e.state_dict(), sched_e=sched_e.state_dict())
                save_checkpoint(checkpoint, state)
                last_good = checkpoint
                log.info("epoch %d/%d done (step %d): consistency %.4g, data %.4g, energy %.4g, lambda %.3g",
                         epoch + 1, cfg.epochs, step + 1, losses.consistency, losses.data, losses.energy, lam)
    seconds = time.perf_counter() - started
    summary = {"steps": total, "resumed_from_step": start_step, "seconds": seconds, "device": str(device),
               "steps_per_second": (total - start_step) / seconds if seconds > 0 else math.nan,
               "processes": group.world_size, "rank": group.rank}
    if group.is_main:
        save_generator_file(Path(out_model), method=method, config=expected, version=cryo_pipeline.__version__,
                            architecture=generator_architecture(cfg), generator_state=g.state_dict(),
                            normalization=batches.normalization, tilt_range_deg=batches.tilt_range_deg,
                            store=str(store), summary=summary)
        write_loss_table(Path(out_losses), history)
    return summary
