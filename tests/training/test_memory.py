"""Predicted GPU memory of training and tiled inference, and the stop-before-start check."""

import pytest
import torch

from cryo_pipeline.config.stages import PredictConfig, TrainConfig
from cryo_pipeline.training import memory
from cryo_pipeline.training.cryogen import build_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GIB = 2**30
SMALL = TrainConfig(crop_px=32, base_channels=8, depth=2)


def test_estimates_grow_with_batch_crop_and_tile():
    train = [memory.training_bytes(SMALL.model_copy(update={"batch_size": b})) for b in (1, 2, 4)]
    assert train[0] < train[1] < train[2] and train[2] == pytest.approx(4 * train[0], rel=0.1)  # activations dominate
    assert memory.training_bytes(SMALL.model_copy(update={"crop_px": 48})) > 3 * train[0]  # ~ crop³
    assert memory.training_bytes(SMALL, method="isonet") < train[0]  # no energy model
    arch = {"base_channels": 8, "depth": 2}
    tiles = [memory.prediction_bytes(tile_px=t, batch_size=2, **arch) for t in (32, 64)]
    assert tiles[1] > 6 * tiles[0]
    assert memory.prediction_bytes(tile_px=32, batch_size=4, **arch) > tiles[0]


def test_training_estimate_is_close_to_the_saved_activations_of_a_real_step():
    """Within a factor 2 of what autograd actually keeps for a CPU forward of g_θ (plus Adam's state)."""
    cfg = TrainConfig(crop_px=16, base_channels=4, depth=2, batch_size=2)
    g = build_generator(cfg)
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        g(torch.randn(2, 1, 16, 16, 16)).sum().backward()
    params = sum(p.numel() * 4 for p in g.parameters())
    measured = 2 * saved + 4 * params  # two generator passes per step, parameters + grads + Adam moments
    estimate = memory.training_bytes(cfg, method="isonet")
    assert measured / 2 <= estimate <= 2 * measured


def test_training_that_does_not_fit_names_the_keys_and_suggests_a_batch_that_fits():
    cfg = SMALL.model_copy(update={"batch_size": 8})
    available = memory.training_bytes(SMALL.model_copy(update={"batch_size": 3})) + 1
    with pytest.raises(ValueError) as err:
        memory.check_training_memory(cfg, available)
    message = str(err.value)
    assert "train.batch_size 8" in message and "only" in message and "GiB are free" in message
    assert "set train.batch_size to 3 (now 8) or less" in message
    assert memory.check_training_memory(cfg.model_copy(update={"batch_size": 3}), available) < available


def test_a_single_cube_too_large_suggests_a_smaller_crop_that_fits():
    cfg = TrainConfig(crop_px=64, base_channels=8, depth=2, batch_size=1)
    available = memory.training_bytes(cfg.model_copy(update={"crop_px": 40})) + 1
    with pytest.raises(ValueError, match=r"set train.batch_size to 1 and train.crop_px to 40 \(now 64\)"):
        memory.check_training_memory(cfg, available)
    with pytest.raises(ValueError, match="use a GPU with more memory"):
        memory.check_training_memory(cfg, 1)


def test_prediction_that_does_not_fit_suggests_a_tile_that_fits():
    cfg = PredictConfig(tile_px=96, batch_size=2, overlap_px=16)
    arch = {"base_channels": 8, "depth": 2}
    available = memory.prediction_bytes(tile_px=64, batch_size=1, **arch) + 1
    with pytest.raises(ValueError) as err:
        memory.check_prediction_memory(cfg, available, **arch)
    assert "predict.tile_px 96" in str(err.value)
    assert "set predict.batch_size to 1 and predict.tile_px to 64 (now 96) or less" in str(err.value)
    fitting = cfg.model_copy(update={"tile_px": 64, "batch_size": 1})
    assert memory.check_prediction_memory(fitting, available, **arch) < available
    memory.check_fits(10, 10, "x", "y")  # equal fits
