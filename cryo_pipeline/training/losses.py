"""Loss terms of CryoGEN: the wedge operator T_M in torch, adversarial losses, masked MSE.

Energy convention (DESIGN.md §4): E_φ gives real samples LOW energy and generated
samples HIGH energy; the generator lowers the energy of its (re-wedged, rotated) output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cryo_pipeline.ops.wedge import missing_wedge_mask_3d

ADVERSARIAL_LOSSES = ("bce", "hinge", "wgan-gp")


def rfft_wedge_mask(
    cube_px: int, *, tilt_min_deg: float, tilt_max_deg: float, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Measured-region mask on the rfft grid of a ``cube_px``³ cube: ``(c, c, c//2 + 1)`` float32."""
    full = missing_wedge_mask_3d(
        (cube_px, cube_px, cube_px), tilt_min_deg=tilt_min_deg, tilt_max_deg=tilt_max_deg
    )
    return torch.from_numpy(np.ascontiguousarray(full[..., : cube_px // 2 + 1])).to(device)


def apply_rfft_mask(volumes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """T_M: keep the Fourier region where ``mask`` is 1 (any leading batch/channel axes).

    Parameters
    ----------
    volumes : torch.Tensor
        ``(..., c, c, c)`` real volumes.
    mask : torch.Tensor
        ``(c, c, c//2 + 1)`` from :func:`rfft_wedge_mask`.
    """
    dims = (-3, -2, -1)
    spectrum = torch.fft.rfftn(volumes.float(), dim=dims)
    return torch.fft.irfftn(spectrum * mask, s=volumes.shape[-3:], dim=dims).to(volumes.dtype)


def energy_model_loss(
    energy_real: torch.Tensor, energy_fake: torch.Tensor, *, kind: str
) -> torch.Tensor:
    """φ's loss: low energy for real samples, high for generated ones (without the GP term)."""
    if kind == "bce":  # −log σ(−E(real)) − log σ(E(fake))
        return F.softplus(energy_real).mean() + F.softplus(-energy_fake).mean()
    if kind == "hinge":
        return F.relu(1.0 + energy_real).mean() + F.relu(1.0 - energy_fake).mean()
    if kind == "wgan-gp":
        return energy_real.mean() - energy_fake.mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(ADVERSARIAL_LOSSES)}")


def generator_adversarial_loss(energy_fake: torch.Tensor, *, kind: str) -> torch.Tensor:
    """θ's adversarial term: lower the energy of generated samples (non-saturating for BCE)."""
    if kind == "bce":
        return F.softplus(energy_fake).mean()
    if kind in ("hinge", "wgan-gp"):
        return energy_fake.mean()
    raise ValueError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(ADVERSARIAL_LOSSES)}")


def gradient_penalty(energy_model: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (‖∇_x E(x)‖ − 1)² at random points between real and fake samples."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    energy = energy_model(mixed)
    (grad,) = torch.autograd.grad(energy.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def wedge_weighted_mse(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, missing_weight: float
) -> torch.Tensor:
    """Mean squared error with the missing-wedge part of the residual weighted extra.

    ‖r‖²/N + missing_weight · ‖(1 − M) r‖²/N, r = prediction − target (Parseval: the
    missing-region term is computed in Fourier space, exactly).
    """
    residual = (prediction - target).float()
    loss = residual.pow(2).mean()
    if missing_weight > 0:
        missing = residual - apply_rfft_mask(residual, mask)
        loss = loss + missing_weight * missing.pow(2).mean()
    return loss


def r1_penalty(energy_model: torch.nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1: ‖∇_x E(x)‖² at the real samples (Mescheder et al. 2018), mean over the batch."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy_model(real).sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()
