"""cryo_pipeline.models: plain ``nn.Module``s (CryoGEN generator and energy model)."""

from __future__ import annotations

from torch import nn

from cryo_pipeline.models.energy import EnergyModel3d
from cryo_pipeline.models.unetpp import UNetPlusPlus3d, check_divisible

__all__ = ["EnergyModel3d", "UNetPlusPlus3d", "check_divisible", "count_parameters"]


def count_parameters(module: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``module`` (only those with ``requires_grad`` by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
