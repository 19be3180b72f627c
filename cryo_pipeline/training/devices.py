"""Which torch device a training, prediction or CN fit runs on (``execution.device``)."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error.

    Raises
    ------
    ValueError
        ``name`` is ``cuda`` and no CUDA device is visible.
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("execution.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
