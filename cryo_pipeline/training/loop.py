"""The outer training loop: epochs, schedules, resume, loss history (pure: no file I/O).

:func:`train_generator` trains g_θ (and E_φ for CryoGEN) on batches of subtomograms and
returns the loss history, the generator's weights and a summary. At the end of every
epoch it hands the complete state (models, optimisers, schedulers, every random state of
every process, the step, the history and :func:`checkpoint_config`) to a callback, which
the stage uses to write the checkpoint; a state passed back as ``resume`` continues
exactly where it stopped: the step counter, learning-rate schedule and λ schedule go on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from cryo_pipeline.config.methods import CRYOGEN, ISONET
from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.training.checkpoint import restore_rng_state, rng_state
from cryo_pipeline.training.cryogen import CryoGenStep, build_energy_model, build_generator, check_finite
from cryo_pipeline.training.data import SubtomoBatches
from cryo_pipeline.training.distributed import ProcessGroup, broadcast_parameters, gather_objects
from cryo_pipeline.training.memory import check_training_memory, free_cuda_bytes
from cryo_pipeline.training.schedules import consistency_weight, warmup_linear_decay

log = logging.getLogger(__name__)

__all__ = ["TrainingResult", "checkpoint_config", "train_generator"]


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced (on every process; the main one writes it).

    Attributes
    ----------
    history : list of tuple
        One row of :data:`cryo_pipeline.io.tables.LOSS_COLUMNS` values per step, resumed steps included.
    generator : dict
        The final generator's state dict.
    summary : dict
        ``steps``, ``resumed_from_step``, ``seconds``, ``device``, ``steps_per_second``,
        ``processes``, ``rank``.
    """

    history: list[tuple]
    generator: dict[str, torch.Tensor]
    summary: dict[str, Any]


def checkpoint_config(cfg: TrainConfig, method: str) -> dict[str, Any]:
    """The config a checkpoint and a model file carry; a resume needs the same one."""
    return {**cfg.model_dump(mode="json"), "method": method}


def _lr_lambda(cfg: TrainConfig):
    total = cfg.epochs * cfg.steps_per_epoch
    return lambda step: warmup_linear_decay(step, total_steps=total, warmup_fraction=cfg.warmup_fraction)


def train_generator(
    batches: SubtomoBatches,
    *,
    cfg: TrainConfig,
    method: str,
    tilt_range_deg: tuple[float, float],
    device: torch.device,
    group: ProcessGroup | None = None,
    resume: dict[str, Any] | None = None,
    save_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_label: object = None,
) -> TrainingResult:
    """Train g_θ on ``batches`` (Algorithm 1 for ``cryogen``; the consistency loss alone for ``isonet``).

    Parameters
    ----------
    batches : SubtomoBatches
        Normalised training crops.
    cfg : TrainConfig
        Architecture, optimisation, noise and loss settings.
    method : {"cryogen", "isonet"}
    tilt_range_deg : (float, float)
        The dataset's tilt range: the wedge of the training objective.
    device : torch.device
        Where to train (``cuda:<local rank>`` under torchrun).
    group : ProcessGroup, optional
        This process's place in a data-parallel group (default: a single process).
    resume : dict, optional
        A state given to ``save_checkpoint`` earlier (with the same :func:`checkpoint_config`), to continue from.
    save_checkpoint : callable, optional
        Called on the main process at the end of every epoch with the complete state, which
        shares the live tensors: write (or deep-copy) it during the call.
    checkpoint_label : optional
        Where the caller keeps that state (a path), named in log lines and divergence messages.

    Raises
    ------
    FloatingPointError
        A loss became NaN or infinite (the message names the step and the last good checkpoint).
    """
    group = group or ProcessGroup()
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
    expected = checkpoint_config(cfg, method)
    start_step, history = 0, []
    if resume is not None:
        g.load_state_dict(resume["generator"])
        opt_g.load_state_dict(resume["opt_g"])
        sched_g.load_state_dict(resume["sched_g"])
        if e is not None:
            e.load_state_dict(resume["energy"])
            opt_e.load_state_dict(resume["opt_e"])
            sched_e.load_state_dict(resume["sched_e"])
        # each process continues its own random streams (rank 0's alone would make every rank draw the same data)
        per_rank = resume.get("rank_rng") or [{"generator_rng": resume["generator_rng"], "rng": resume["rng"]}]
        if group.rank < len(per_rank):
            rng.set_state(per_rank[group.rank]["generator_rng"])
            restore_rng_state(per_rank[group.rank]["rng"])
        else:
            log.warning("checkpoint %s holds random states of %d process(es); process %d starts fresh streams",
                        checkpoint_label, len(per_rank), group.rank)
            rng.manual_seed(cfg.seed + 1000 * group.rank + int(resume["step"]))
        start_step, history = int(resume["step"]), list(resume["history"])
        log.info("resuming %s training from %s at step %d", method, checkpoint_label, start_step)
    stepper = CryoGenStep(cfg=cfg, method=method, tilt_range_deg=tilt_range_deg, device=device,
                          generator_module=g, energy_module=e, opt_g=opt_g, opt_e=opt_e, group=group)
    total = cfg.epochs * cfg.steps_per_epoch
    log.info("%s: %d training cubes, crop %d, %d steps (%d epochs x %d), batch %d, device %s, %d process(es)",
             method, batches.n_cubes, cfg.crop_px, total, cfg.epochs, cfg.steps_per_epoch, cfg.batch_size,
             device, group.world_size)
    g.train()
    if e is not None:
        e.train()
    started = time.perf_counter()
    last_good = checkpoint_label if resume is not None else None
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
            # collective: every process hands over its random states, rank 0 keeps them
            rank_rng = gather_objects({"generator_rng": rng.get_state(), "rng": rng_state()}, group)
            if group.is_main and save_checkpoint is not None:
                state = {"config": expected, "step": step + 1, "history": list(history), "generator": g.state_dict(),
                         "opt_g": opt_g.state_dict(), "sched_g": sched_g.state_dict(),
                         "generator_rng": rng.get_state(), "rng": rng_state(), "rank_rng": rank_rng}
                if e is not None:
                    state.update(energy=e.state_dict(), opt_e=opt_e.state_dict(), sched_e=sched_e.state_dict())
                save_checkpoint(state)
                last_good = checkpoint_label
                log.info("epoch %d/%d done (step %d): consistency %.4g, data %.4g, energy %.4g, lambda %.3g",
                         epoch + 1, cfg.epochs, step + 1, losses.consistency, losses.data, losses.energy, lam)
    seconds = time.perf_counter() - started
    summary = {"steps": total, "resumed_from_step": start_step, "seconds": seconds, "device": str(device),
               "steps_per_second": (total - start_step) / seconds if seconds > 0 else math.nan,
               "processes": group.world_size, "rank": group.rank}
    return TrainingResult(history=history, generator=g.state_dict(), summary=summary)
