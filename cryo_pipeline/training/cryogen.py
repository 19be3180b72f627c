"""CryoGEN training (Algorithm 1 of the paper, sign typos resolved as in DESIGN.md §4).

Each step, with noise levels u·σ (u ~ U(0, 1], fresh per step) and R one of the 20
wedge rotations:

* x̂ = g_θ(y + ε_g); fake = T_M(R(x̂)); real = y + ε.
* φ minimises the adversarial loss: low energy for real, high for fake (+ GP for WGAN-GP).
* θ minimises  w_adv·L_adv(E_φ(fake)) + ‖T_M(x̂) − y‖²/(2σ_n²)
  + λ·‖g_θ(T_M(R(x̃)) + ε_h) − R(x̃)‖²   with x̃ = g_θ'(y) (no gradient, θ' = the
  parameters before this step), or by default x̃ = T_M(y) + (1 − T_M)(g_θ'(y)), which
  keeps the measured data exact in the target (``consistency_target``). The consistency residual is taken in the rotated
  frame (R is a permutation, so the norm is the same as after R⁻¹) and its part in the
  re-wedged region is weighted extra (``missing_region_weight``).
* λ is constant for the first epoch, then decays linearly; the learning rates warm up
  linearly over 10 % of the steps, then decay linearly.

``method="isonet"`` is the IsoNet-style baseline in the same harness: the consistency
loss alone with λ fixed, x̃ = measured part of y + missing part of g_θ'(y) (IsoNet's
"combined" volume), no energy model and no data term.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cryo_pipeline.config.methods import CRYOGEN, ISONET, TRAINED_METHODS
from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.models import EnergyModel3d, UNetPlusPlus3d
from cryo_pipeline.ops.rotations import WEDGE_ROTATIONS, rotate_volume
from cryo_pipeline.training.distributed import ProcessGroup, average_gradients
from cryo_pipeline.training.losses import (
    apply_rfft_mask,
    energy_model_loss,
    generator_adversarial_loss,
    gradient_penalty,
    rfft_wedge_mask,
    wedge_weighted_mse,
)

log = logging.getLogger(__name__)


def build_generator(cfg: TrainConfig) -> UNetPlusPlus3d:
    """g_θ from the training config."""
    return UNetPlusPlus3d(1, 1, base_channels=cfg.base_channels, depth=cfg.depth, norm=cfg.norm, residual=True)


def build_energy_model(cfg: TrainConfig) -> EnergyModel3d:
    """E_φ from the training config."""
    c = cfg.disc_channels
    return EnergyModel3d(1, channels=(c, 2 * c, 4 * c, 4 * c), spectral_norm=cfg.spectral_norm)


def _level(scale: float, generator: torch.Generator) -> float:
    """A noise level u·scale with u ~ U(0, 1]."""
    return scale * (1.0 - torch.rand((), generator=generator).item())


def _noise(like: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator).to(like.device, like.dtype) * level


@dataclass
class StepLosses:
    """One step's loss terms (floats) for the CSV log."""

    energy: float = 0.0
    adversarial: float = 0.0
    data: float = 0.0
    consistency: float = 0.0
    extra: dict = field(default_factory=dict)


class CryoGenStep:
    """The models, optimisers and the wedge mask; :meth:`run` does one optimisation step."""

    def __init__(self, *, cfg: TrainConfig, method: str, tilt_range_deg: tuple[float, float],
                 device: torch.device, generator_module: torch.nn.Module, energy_module: torch.nn.Module | None,
                 opt_g: torch.optim.Optimizer, opt_e: torch.optim.Optimizer | None,
                 group: ProcessGroup | None = None) -> None:
        if method not in TRAINED_METHODS:
            raise ValueError(f"unknown training method {method!r}; choose one of {', '.join(TRAINED_METHODS)}")
        self.cfg, self.method, self.device = cfg, method, device
        self.g, self.e, self.opt_g, self.opt_e = generator_module, energy_module, opt_g, opt_e
        self.group = group or ProcessGroup()
        self.mask = rfft_wedge_mask(cfg.crop_px, tilt_min_deg=tilt_range_deg[0], tilt_max_deg=tilt_range_deg[1],
                                    device=device)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None

    def _ctx(self):
        import contextlib

        return self.autocast if self.autocast is not None else contextlib.nullcontext()

    def run(self, y: torch.Tensor, *, lam: float, rng: torch.Generator) -> StepLosses:
        """One step on the batch ``y`` ``(b, 1, c, c, c)`` (already on the device)."""
        cfg, losses = self.cfg, StepLosses()
        rotation = int(torch.randint(len(WEDGE_ROTATIONS), (), generator=rng))
        with torch.no_grad(), self._ctx():
            previous = self.g(y).float()  # x̃ from θ' (the parameters before this step)
        if self.method == ISONET or cfg.consistency_target == "filled":
            previous = apply_rfft_mask(y, self.mask) + previous - apply_rfft_mask(previous, self.mask)
        if self.method == CRYOGEN:
            x_hat, fake = self._energy_step(y, rotation, rng, losses)
        self.opt_g.zero_grad(set_to_none=True)
        with self._ctx():
            target = rotate_volume(previous, rotation)
            rewedged = apply_rfft_mask(target, self.mask)
            rewedged = rewedged + _noise(rewedged, _level(cfg.noise_scale_consistency, rng), rng)
            consistency = wedge_weighted_mse(self.g(rewedged).float(), target, self.mask,
                                             missing_weight=cfg.missing_region_weight)
            total = lam * consistency
            if self.method == CRYOGEN:
                adversarial = generator_adversarial_loss(self.e(fake).float(), kind=cfg.adversarial_loss)
                data = (apply_rfft_mask(x_hat, self.mask) - y).pow(2).mean() / (2.0 * cfg.sigma_n**2)
                total = total + cfg.adversarial_weight * adversarial + data
                losses.adversarial, losses.data = adversarial.item(), data.item()
        total.backward()
        average_gradients(self.g, self.group)
        self.opt_g.step()
        losses.consistency = consistency.item()
        return losses

    def _energy_step(self, y, rotation, rng, losses):
        """φ's update; returns x̂ and fake (with the graph to θ) for θ's update."""
        cfg = self.cfg
        with self._ctx():
            x_hat = self.g(y + _noise(y, _level(cfg.noise_scale_generator, rng), rng)).float()
            fake = apply_rfft_mask(rotate_volume(x_hat, rotation), self.mask)
            real = y + _noise(y, _level(cfg.noise_scale_real, rng), rng)
        for p in self.e.parameters():
            p.requires_grad_(True)
        self.opt_e.zero_grad(set_to_none=True)
        with self._ctx():
            loss_e = energy_model_loss(self.e(real).float(), self.e(fake.detach()).float(), kind=cfg.adversarial_loss)
        if cfg.adversarial_loss == "wgan-gp":
            loss_e = loss_e + cfg.gradient_penalty_weight * gradient_penalty(self.e, real, fake.detach())
        loss_e.backward()
        average_gradients(self.e, self.group)
        self.opt_e.step()
        for p in self.e.parameters():
            p.requires_grad_(False)  # θ's step differentiates through E_φ, not into it
        losses.energy = loss_e.item()
        return x_hat, fake


def check_finite(losses: StepLosses, *, step: int, last_checkpoint: Path | None) -> None:
    """Stop with the step and the last good checkpoint when a loss is NaN or infinite."""
    values = {"energy": losses.energy, "adversarial": losses.adversarial, "data": losses.data,
              "consistency": losses.consistency}
    bad = {k: v for k, v in values.items() if not torch.isfinite(torch.tensor(v))}
    if bad:
        where = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
        raise FloatingPointError(
            f"training diverged at step {step}: non-finite loss {bad}; {where}. "
            "Lower train.learning_rate / learning_rate_energy or train.adversarial_weight"
        )


def elapsed_since(start: float) -> float:
    """Seconds since ``start`` (perf_counter)."""
    return time.perf_counter() - start
