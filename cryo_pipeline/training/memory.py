"""Predicted GPU memory of CryoGEN training and tiled inference, checked before starting.

The networks are run once on the ``meta`` device (shapes only, no memory, no compute):
training counts the tensors autograd saves for the backward pass of g_θ and E_φ plus
parameters, gradients and Adam's two moments; inference sums the feature maps of every
convolution, which U-Net++'s dense skips keep alive until the output. Both are estimates
(cuDNN workspaces and the caching allocator add to them, hence ``HEADROOM``); when one does
not fit in the free memory the run stops before the first step with the key to change and
a value that fits, as cryoCARE suggests a smaller tile after an out-of-memory error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from cryo_pipeline.config.methods import CRYOGEN
from cryo_pipeline.config.stages import PredictConfig, TrainConfig

log = logging.getLogger(__name__)

__all__ = ["check_fits", "check_prediction_memory", "check_training_memory", "prediction_bytes", "training_bytes"]

HEADROOM = 1.5  # factor on the estimates: cuDNN workspaces, allocator fragmentation, the CUDA context
# forward passes of g_θ per step whose graphs are alive together (generator loss + consistency loss)
# and of E_φ (real and fake); see training.cryogen.CryoGenStep.run
_GENERATOR_PASSES, _ENERGY_PASSES = 2, 2


def _parameter_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _saved_bytes(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Bytes of the tensors autograd saves for backward in one forward pass of ``module`` on ``shape``."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    x = torch.empty(shape, device="meta", requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module.to("meta")(x)
    return total


def _feature_bytes(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Bytes of every convolution's output in one forward pass without gradients."""
    total = 0

    def hook(_module, _inputs, output) -> None:
        nonlocal total
        total += output.numel() * output.element_size()

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, torch.nn.Conv3d)]
    try:
        with torch.no_grad():
            module.to("meta")(torch.empty(shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total


def training_bytes(cfg: TrainConfig, *, method: str = CRYOGEN) -> int:
    """Predicted peak GPU memory (bytes) of one training step with ``cfg`` (one process)."""
    from cryo_pipeline.training.cryogen import build_energy_model, build_generator

    shape = (cfg.batch_size, 1, cfg.crop_px, cfg.crop_px, cfg.crop_px)
    generator = build_generator(cfg)
    total = 4 * _parameter_bytes(generator) + _GENERATOR_PASSES * _saved_bytes(generator, shape)
    if method == CRYOGEN:
        energy = build_energy_model(cfg)
        total += 4 * _parameter_bytes(energy) + _ENERGY_PASSES * _saved_bytes(energy, shape)
    return int(HEADROOM * total)


def prediction_bytes(*, tile_px: int, batch_size: int, base_channels: int, depth: int, norm: str = "group") -> int:
    """Predicted peak GPU memory (bytes) of tiled inference: ``batch_size`` tiles of ``tile_px``³ at a time."""
    from cryo_pipeline.models import UNetPlusPlus3d

    model = UNetPlusPlus3d(1, 1, base_channels=base_channels, depth=depth, norm=norm, residual=True)
    features = _feature_bytes(model, (batch_size, 1, tile_px, tile_px, tile_px))
    return int(HEADROOM * (_parameter_bytes(model) + features))


def check_fits(estimate_bytes: int, available_bytes: int, what: str, suggestion: str) -> None:
    """Raise a ``ValueError`` naming ``what`` and ``suggestion`` if the estimate exceeds the available memory."""
    if estimate_bytes > available_bytes:
        raise ValueError(f"{what} needs about {estimate_bytes / 2**30:.2f} GiB of GPU memory but only "
                         f"{available_bytes / 2**30:.2f} GiB are free; {suggestion}")


def _largest_fitting(values: list[int], estimate: Callable[[int], int], available: int) -> int | None:
    """The largest of ``values`` (descending) whose estimate fits, or None."""
    return next((v for v in values if estimate(v) <= available), None)


def check_training_memory(cfg: TrainConfig, available_bytes: int, *, method: str = CRYOGEN) -> int:
    """Stop before training if ``cfg`` will not fit; return the estimate (bytes)."""
    estimate = training_bytes(cfg, method=method)
    if estimate <= available_bytes:
        return estimate
    batch = _largest_fitting(list(range(cfg.batch_size - 1, 0, -1)),
                             lambda b: training_bytes(cfg.model_copy(update={"batch_size": b}), method=method),
                             available_bytes)
    if batch is not None:
        suggestion = f"set train.batch_size to {batch} (now {cfg.batch_size}) or less"
    else:
        step = 2**cfg.depth
        crops = [c for c in range(cfg.crop_px - step, 15, -step)]
        crop = _largest_fitting(crops, lambda c: training_bytes(cfg.model_copy(update={"batch_size": 1, "crop_px": c}),
                                                                method=method), available_bytes)
        suggestion = (f"set train.batch_size to 1 and train.crop_px to {crop} (now {cfg.crop_px}) or less"
                      if crop is not None else "use a GPU with more memory or lower train.base_channels")
    check_fits(estimate, available_bytes, f"training (train.batch_size {cfg.batch_size}, train.crop_px "
               f"{cfg.crop_px}, train.base_channels {cfg.base_channels}, train.depth {cfg.depth})", suggestion)
    return estimate  # pragma: no cover - check_fits raised


def check_prediction_memory(cfg: PredictConfig, available_bytes: int, *, base_channels: int, depth: int,
                            norm: str = "group") -> int:
    """Stop before tiled inference if ``cfg``'s tiles will not fit; return the estimate (bytes)."""
    arch = {"base_channels": base_channels, "depth": depth, "norm": norm}
    estimate = prediction_bytes(tile_px=cfg.tile_px, batch_size=cfg.batch_size, **arch)
    if estimate <= available_bytes:
        return estimate
    batch = _largest_fitting(list(range(cfg.batch_size - 1, 0, -1)),
                             lambda b: prediction_bytes(tile_px=cfg.tile_px, batch_size=b, **arch), available_bytes)
    if batch is not None:
        suggestion = f"set predict.batch_size to {batch} (now {cfg.batch_size}) or less"
    else:
        step = 2**depth
        tiles = [t for t in range(cfg.tile_px - step, 15, -step) if t > 2 * cfg.overlap_px or t == 16]
        tile = _largest_fitting(tiles, lambda t: prediction_bytes(tile_px=t, batch_size=1, **arch), available_bytes)
        suggestion = (f"set predict.batch_size to 1 and predict.tile_px to {tile} (now {cfg.tile_px}) or less"
                      if tile is not None else "use a GPU with more memory")
    check_fits(estimate, available_bytes, f"prediction (predict.tile_px {cfg.tile_px}, predict.batch_size "
               f"{cfg.batch_size})", suggestion)
    return estimate  # pragma: no cover - check_fits raised


def free_cuda_bytes(device: torch.device) -> int:
    """Free memory of a CUDA device (``torch.cuda.mem_get_info``)."""
    return int(torch.cuda.mem_get_info(device)[0])
