"""Atomic training checkpoints that carry their config, and resuming from them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryo_pipeline.io.atomic import atomic_write_path

# keys that may differ between the run that wrote a checkpoint and the one resuming it
RESUMABLE_DIFFERENCES = frozenset({"device"})


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary name in the same folder, then rename: never half-written."""
    with atomic_write_path(Path(path)) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, *, expected_config: dict[str, Any], map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint and check it was written with the same training config.

    Raises
    ------
    ValueError
        The checkpoint's config differs (each differing key named with both values), or it
        is not a training checkpoint.
    """
    state = torch.load(Path(path), map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or "config" not in state:
        raise ValueError(f"{path} is not a cryo_pipeline training checkpoint (no 'config' entry)")
    differing = sorted(
        key
        for key in set(state["config"]) | set(expected_config)
        if key not in RESUMABLE_DIFFERENCES and state["config"].get(key) != expected_config.get(key)
    )
    if differing:
        details = ", ".join(f"{k}: {state['config'].get(k)!r} (checkpoint) vs {expected_config.get(k)!r}" for k in differing)
        raise ValueError(
            f"checkpoint {path} was written with another config ({details}); "
            "delete it to start over, or restore the config to resume"
        )
    return state


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) random states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
