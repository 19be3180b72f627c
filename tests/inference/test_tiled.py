"""Tiled inference: exact for identity models at any volume size, batched, streamed, data-consistent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cryo_pipeline.inference import predict_tiled, predict_tiled_to_zarr, volume_statistics
from cryo_pipeline.io.zarr_store import create_volume_zarr, read_volume_zarr
from cryo_pipeline.models import UNetPlusPlus3d
from cryo_pipeline.ops.wedge import apply_missing_wedge_3d

TILT = (-60.0, 45.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Identity(nn.Identity):
    divisor = 8


class Zero(nn.Module):
    divisor = 8

    def forward(self, x):
        return torch.zeros_like(x)


class Affine(nn.Module):
    """A non-trivial, tile-local model (so blending and batching matter)."""

    divisor = 8

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def _volume(shape, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 3 + 10).astype(np.float32)


@pytest.mark.parametrize("shape", [(37, 70, 45), (20, 64, 64), (5, 33, 40)])
def test_identity_comes_back_for_any_volume_size(shape):
    volume = _volume(shape)
    out = predict_tiled(volume, Identity(), tile_px=32, overlap_px=8, progress=False)
    assert out.shape == volume.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, volume, atol=1e-5, rtol=0)


def test_untrained_unetpp_is_the_identity_through_tiling():
    torch.manual_seed(0)
    model = UNetPlusPlus3d(base_channels=4, depth=2).train()
    volume = _volume((20, 40, 36))
    out = predict_tiled(volume, model, tile_px=16, overlap_px=4, batch_size=8, progress=False)
    np.testing.assert_allclose(out, volume, atol=1e-5, rtol=0)
    assert model.training  # mode restored


@pytest.mark.parametrize("normalization", [None, (3.0, 2.0)])
def test_constant_volume_stays_constant(normalization):
    volume = np.full((30, 41, 35), 7.25, dtype=np.float32)
    out = predict_tiled(volume, Identity(), tile_px=16, overlap_px=6, normalization=normalization, progress=False)
    np.testing.assert_allclose(out, 7.25, atol=1e-5, rtol=0)


def test_whole_tomogram_normalization_not_per_tile():
    """A model that outputs 0 (= the normalised mean) gives the global mean everywhere."""
    volume = _volume((24, 40, 40))
    volume[:, :20] += 50.0  # tiles with very different local statistics
    out = predict_tiled(volume, Zero(), tile_px=16, overlap_px=4, progress=False)
    np.testing.assert_allclose(out, volume.mean(dtype=np.float64), rtol=1e-5)
    out = predict_tiled(volume, Zero(), tile_px=16, overlap_px=4, normalization=(1.5, 2.0), progress=False)
    np.testing.assert_allclose(out, 1.5, atol=1e-6)


def test_volume_statistics_match_numpy():
    volume = _volume((40, 30, 20)) + 1e4
    mean, std = volume_statistics(volume)
    assert mean == pytest.approx(volume.mean(dtype=np.float64), rel=1e-12)
    assert std == pytest.approx(volume.std(dtype=np.float64), rel=1e-9)


def test_keep_measured_is_exact_for_a_single_tile():
    volume = _volume((32, 32, 32))
    out = predict_tiled(volume, Zero(), tile_px=32, overlap_px=4, keep_measured=True, tilt_range_deg=TILT,
                        progress=False)
    expected = apply_missing_wedge_3d(volume, tilt_min_deg=TILT[0], tilt_max_deg=TILT[1])
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)
    # with the identity the input is kept exactly
    same = predict_tiled(volume, Identity(), tile_px=32, overlap_px=4, keep_measured=True, tilt_range_deg=TILT,
                         progress=False)
    np.testing.assert_allclose(same, volume, atol=1e-5, rtol=0)


def test_keep_measured_blended_approximates_the_wedge_filter():
    rng = np.random.default_rng(1)
    smooth = np.fft.ifftn(np.fft.fftn(rng.standard_normal((64, 64, 64))) *
                          np.exp(-40 * sum(np.meshgrid(*[np.fft.fftfreq(64) ** 2] * 3, indexing="ij")))).real
    volume = smooth.astype(np.float32)
    out = predict_tiled(volume, Zero(), tile_px=32, overlap_px=8, keep_measured=True, tilt_range_deg=TILT,
                        batch_size=8, progress=False)
    expected = apply_missing_wedge_3d(volume, tilt_min_deg=TILT[0], tilt_max_deg=TILT[1])
    assert np.corrcoef(out.ravel(), expected.ravel())[0, 1] > 0.9
    rel = np.linalg.norm(out - expected) / np.linalg.norm(expected)
    assert rel < np.linalg.norm(volume - expected) / np.linalg.norm(expected)  # closer than the unfiltered input


def test_zarr_and_memmap_out_match_in_memory(tmp_path):
    torch.manual_seed(0)
    model, volume = Affine(), _volume((37, 50, 29))
    kwargs = dict(tile_px=16, overlap_px=4, progress=False)
    ref = predict_tiled(volume, model, **kwargs)
    store = create_volume_zarr(tmp_path / "out.zarr", volume.shape, chunks=(16, 16, 16), voxel_size_angstrom=10.0)
    assert predict_tiled(volume, model, out=store, **kwargs) is store
    np.testing.assert_allclose(store[...], ref, atol=1e-6, rtol=0)
    mm = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=volume.shape)
    src = np.lib.format.open_memmap(tmp_path / "in.npy", mode="w+", dtype=np.float32, shape=volume.shape)
    src[...] = volume
    predict_tiled(src, model, out=mm, **kwargs)
    np.testing.assert_allclose(np.asarray(mm), ref, atol=1e-6, rtol=0)


def test_predict_to_zarr_writes_store_with_attributes(tmp_path):
    volume = _volume((20, 24, 40))
    path = tmp_path / "pred.zarr"
    predict_tiled_to_zarr(volume, Identity(), path, voxel_size_angstrom=13.0, tile_px=16, overlap_px=4,
                          tilt_range_deg=TILT, progress=False)
    data, attrs = read_volume_zarr(path)
    np.testing.assert_allclose(data, volume, atol=1e-5, rtol=0)
    assert attrs["voxel_size_angstrom"] == 13.0 and (attrs["tilt_min_deg"], attrs["tilt_max_deg"]) == TILT
    assert [p.name for p in tmp_path.iterdir()] == ["pred.zarr"]  # no temporary left


def test_batch_sizes_agree():
    torch.manual_seed(0)
    model, volume = Affine(), _volume((30, 40, 33))
    a = predict_tiled(volume, model, tile_px=16, overlap_px=4, batch_size=1, progress=False)
    b = predict_tiled(volume, model, tile_px=16, overlap_px=4, batch_size=5, progress=False)
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)  # conv kernels may block batches differently (float32 ulps)
    assert not np.allclose(a, volume, atol=1e-2)  # the model did something


def test_progress_bar_goes_to_stderr(capsys):
    predict_tiled(_volume((16, 16, 24)), Identity(), tile_px=16, overlap_px=4)
    captured = capsys.readouterr()
    assert captured.out == "" and "tile" in captured.err


def test_bad_arguments_raise_clear_errors():
    volume = _volume((32, 32, 32))
    with pytest.raises(ValueError, match=r"tile_px \(20, 20, 20\).*not divisible by 8.*use 16 or 24"):
        predict_tiled(volume, Identity(), tile_px=20, overlap_px=4, progress=False)
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(volume, Identity(), tile_px=16, overlap_px=16, progress=False)
    with pytest.raises(ValueError, match="tilt_range_deg"):
        predict_tiled(volume, Identity(), tile_px=16, overlap_px=4, keep_measured=True, progress=False)
    with pytest.raises(ValueError, match="std > 0"):
        predict_tiled(volume, Identity(), tile_px=16, overlap_px=4, normalization=(0.0, 0.0), progress=False)
    with pytest.raises(ValueError, match="float32 array of shape"):
        predict_tiled(volume, Identity(), tile_px=16, overlap_px=4, out=np.zeros((4, 4, 4), np.float32),
                      progress=False)
    with pytest.raises(ValueError, match=r"\(d, h, w\)"):
        predict_tiled(volume[0], Identity(), tile_px=16, overlap_px=4, progress=False)
