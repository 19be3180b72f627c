"""The CN fit loop: schedule, global coordinates, a fit that lowers the projection loss."""

import math

import numpy as np
import pytest
import torch

from cryo_pipeline.models.siren import Siren
from cryo_pipeline.ops.projector import ParallelBeamProjector
from cryo_pipeline.training.cn_fit import (
    FitSettings,
    evaluate_window,
    fit_window,
    log_decay_lr,
    value_scale,
    volume_coordinates,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_log_decay_runs_from_start_to_end_geometrically():
    lrs = [log_decay_lr(s, 5, lr_start=1e-3, lr_end=1e-5) for s in range(5)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-5)
    ratios = np.array(lrs[1:]) / np.array(lrs[:-1])
    assert np.allclose(ratios, 10 ** -0.5)
    assert log_decay_lr(0, 1, lr_start=1e-3, lr_end=1e-4) == 1e-3


def test_coordinates_are_global_so_any_rows_are_a_slice_of_the_whole():
    shape = (6, 10, 8)
    whole = volume_coordinates(shape, np.arange(10)).reshape(6, 10, 8, 3)
    part = volume_coordinates(shape, np.array([3, 4, 7])).reshape(6, 3, 8, 3)
    assert torch.equal(part, whole[:, [3, 4, 7]])
    # isotropic: the longest axis spans [-1, 1], one voxel is 2 / max(shape) on every axis
    assert whole[..., 1].min() == pytest.approx(-1 + 1 / 10) and whole[..., 1].max() == pytest.approx(1 - 1 / 10)
    assert float(whole[1, 0, 0, 0] - whole[0, 0, 0, 0]) == pytest.approx(2 / 10)
    assert float(whole[0, 0, 1, 2] - whole[0, 0, 0, 2]) == pytest.approx(2 / 10)


def test_value_scale_is_rms_over_depth_and_rejects_empty_data():
    series = np.full((3, 4, 5), 2.0)
    assert value_scale(series, depth_px=4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="rms 0"):
        value_scale(np.zeros((2, 2, 2)), depth_px=4)


def _problem():
    shape = (12, 6, 12)
    truth = np.zeros(shape, np.float32)
    truth[4:8, :, 3:9] = 1.0
    angles = np.arange(-60, 61, 10.0)
    projector = ParallelBeamProjector(shape, angles)
    measured = projector.forward(torch.from_numpy(truth))
    return shape, truth, projector, measured


def test_a_short_fit_lowers_the_loss_and_is_deterministic():
    shape, _, projector, measured = _problem()
    settings = FitSettings(iterations=150, lr_start=3e-3, lr_end=3e-4, rows_per_step=3, seed=0)
    scale = value_scale(measured, depth_px=shape[0])
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = Siren(width=32, n_hidden_layers=2, nonnegative=True, seed=0)
        history = fit_window(net, measured, projector, volume_shape_zyx=shape, window_y=(0, 6), settings=settings,
                             scale=scale)
        runs.append((history, evaluate_window(net, volume_shape_zyx=shape, window_y=(0, 6), scale=scale)))
    (history, volume), (history2, volume2) = runs
    assert history[-1] < 0.5 * history[0]
    assert history == history2 and np.array_equal(volume, volume2)
    assert volume.shape == shape and volume.dtype == np.float32 and volume.min() >= 0


def test_window_rows_must_match_and_a_diverging_loss_names_the_step():
    shape, _, projector, measured = _problem()
    net = Siren(width=16, n_hidden_layers=1, seed=0)
    settings = FitSettings(iterations=3, lr_start=1e-3, lr_end=1e-4)
    with pytest.raises(ValueError, match="do not match the window"):
        fit_window(net, measured, projector, volume_shape_zyx=shape, window_y=(0, 5), settings=settings, scale=1.0)
    bad = measured.clone()
    bad[0, 0, 0] = math.inf
    with pytest.raises((ValueError, FloatingPointError)):
        fit_window(net, bad, projector, volume_shape_zyx=shape, window_y=(0, 6), settings=settings, scale=1.0)
    with pytest.raises(FloatingPointError, match="at step 0"):
        fit_window(net, measured, projector, volume_shape_zyx=shape, window_y=(0, 6), settings=settings,
                   scale=math.nan)
