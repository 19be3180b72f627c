"""Model files of both networks: saved, loaded and rebuilt here, and nowhere else.

* **CryoGEN / IsoNet-style generator** (``results/<run>/<dataset>/<method>/model.pt``,
  written by ``train_cryogen``, read by ``predict_cryogen``): a ``torch.save`` dict with
  ``kind`` = :data:`GENERATOR_KIND`, ``method``, the training ``config``, the package
  ``version``, the U-Net++ ``architecture`` (``base_channels``, ``depth``, ``norm``),
  the ``generator`` state dict, the tomogram ``normalization`` (mean, std), the
  ``tilt_range_deg`` it was trained for, the ``store`` it was trained on and a ``summary``.
* **Training checkpoints** (``<method>/checkpoints/last.pt``): models, optimisers,
  schedulers, random states, the step and the history, with the ``config`` they were
  written with; a resume checks that config (:func:`load_checkpoint`).
* **CN coordinate-network weights** (``cn/seed/model.pt``, ``cn/slabs/slab_<i>.pt``):
  ``state_dict``, the SIREN ``architecture`` (:data:`SIREN_ARCHITECTURE_KEYS`), the
  ``slab`` and the fit time of the chain so far (``chain_s``).

Every file is written under a temporary name and renamed (never half-written).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cryo_pipeline.io.atomic import atomic_write_path
from cryo_pipeline.models import UNetPlusPlus3d
from cryo_pipeline.models.siren import Siren

__all__ = [
    "GENERATOR_KIND",
    "RESUMABLE_DIFFERENCES",
    "SIREN_ARCHITECTURE_KEYS",
    "build_siren",
    "generator_architecture",
    "load_checkpoint",
    "load_generator_file",
    "load_siren_weights",
    "save_checkpoint",
    "save_generator_file",
    "save_siren_weights",
]

GENERATOR_KIND = "cryo_pipeline.generator"
"""``kind`` of a generator model file (a checkpoint or a foreign file has none)."""
GENERATOR_ARCHITECTURE_KEYS = ("base_channels", "depth", "norm")
"""Train-config keys that rebuild the U-Net++ of a model file."""
SIREN_ARCHITECTURE_KEYS = ("width", "n_hidden_layers", "w0", "fourier_features", "fourier_scale", "nonnegative")
"""CN-config keys that define the SIREN; weights load only into the same architecture."""
RESUMABLE_DIFFERENCES = frozenset({"device"})
"""Checkpoint config keys that may differ between the run that wrote it and the one resuming
(``device``: in the training config of versions before the ``execution:`` section)."""


def _save(path: Path, state: Mapping[str, Any]) -> None:
    with atomic_write_path(Path(path)) as tmp:
        torch.save(dict(state), tmp)


# --- generator (CryoGEN / IsoNet-style) -------------------------------------------------
def generator_architecture(cfg: Any) -> dict[str, Any]:
    """The U-Net++ architecture a model file records, from the training config."""
    return {key: getattr(cfg, key) for key in GENERATOR_ARCHITECTURE_KEYS}


def save_generator_file(path: Path, *, method: str, config: Mapping[str, Any], version: str,
                        architecture: Mapping[str, Any], generator_state: Mapping[str, torch.Tensor],
                        normalization: tuple[float, float], tilt_range_deg: tuple[float, float], store: str,
                        summary: Mapping[str, Any]) -> None:
    """Write a generator model file (see the module docstring for its content)."""
    _save(Path(path), {"kind": GENERATOR_KIND, "method": method, "config": dict(config), "version": version,
                       "architecture": dict(architecture), "generator": generator_state,
                       "normalization": normalization, "tilt_range_deg": tilt_range_deg, "store": store,
                       "summary": dict(summary)})


def load_generator_file(model_path: Path, *, device: torch.device) -> tuple[UNetPlusPlus3d, dict]:
    """Rebuild the generator of a model file written by ``train_cryogen`` (eval mode, on ``device``).

    Raises
    ------
    ValueError
        The file is not a torch file, or not a generator model file (a training
        checkpoint is named as such).
    """
    try:
        state = torch.load(Path(model_path), map_location=device, weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:  # not a torch file at all
        raise ValueError(f"{model_path} is not a cryo_pipeline generator file (written by train-cryogen): "
                         f"torch.load cannot read it ({err})") from None
    if not isinstance(state, dict) or state.get("kind") != GENERATOR_KIND:
        hint = "; it is a training checkpoint, pass the model file (--out-model of train-cryogen)" if (
            isinstance(state, dict) and "opt_g" in state) else ""
        raise ValueError(f"{model_path} is not a cryo_pipeline generator file (written by train-cryogen){hint}")
    arch = state["architecture"]
    model = UNetPlusPlus3d(1, 1, base_channels=arch["base_channels"], depth=arch["depth"], norm=arch["norm"])
    model.load_state_dict(state["generator"])
    return model.to(device).eval(), state


# --- training checkpoints ---------------------------------------------------------------
def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` to a temporary name in the same folder, then rename: never half-written."""
    _save(Path(path), state)


def load_checkpoint(path: Path, *, expected_config: Mapping[str, Any],
                    map_location: str | torch.device = "cpu") -> dict:
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
        details = ", ".join(f"{k}: {state['config'].get(k)!r} (checkpoint) vs {expected_config.get(k)!r}"
                            for k in differing)
        raise ValueError(
            f"checkpoint {path} was written with another config ({details}); "
            "delete it to start over, or restore the config to resume"
        )
    return state


# --- CN coordinate networks -------------------------------------------------------------
def build_siren(cfg: Any) -> Siren:
    """The network every slab of a run uses (same architecture and initial weights), from the CN config."""
    return Siren(**{key: getattr(cfg, key) for key in SIREN_ARCHITECTURE_KEYS}, seed=cfg.seed)


def save_siren_weights(path: Path, model: torch.nn.Module, cfg: Any, *, slab: int, chain_s: float) -> None:
    """Write a CN network's weights with its architecture, slab index and chain time."""
    _save(Path(path), {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                       "architecture": {k: getattr(cfg, k) for k in SIREN_ARCHITECTURE_KEYS}, "slab": slab,
                       "chain_s": chain_s})


def load_siren_weights(path: Path, cfg: Any, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild the network of ``cfg`` with the weights in ``path`` (on ``device``).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist (its fit has not run).
    ValueError
        The file cannot be read, or its architecture differs from ``cfg``'s.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"initial weights {path} do not exist; run fit_slab_seed (or the parent slab) first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged file
        raise ValueError(f"{path}: cannot read the network weights ({type(error).__name__}: {error})") from None
    expected = {k: getattr(cfg, k) for k in SIREN_ARCHITECTURE_KEYS}
    if state.get("architecture") != expected:
        raise ValueError(f"{path}: network {state.get('architecture')} differs from the config's {expected}; "
                         "rerun fit_slab_seed with this config")
    model = build_siren(cfg)
    model.load_state_dict(state["state_dict"])
    return model.to(device), state
