"""Split inference: groups partition the tiles; N groups + the Dask stitch equal predict_tiled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cryo_pipeline.inference import predict_tiled
from cryo_pipeline.inference.tile_groups import group_tile_origins, predict_tile_group, tile_group, write_tile_store
from cryo_pipeline.io.tile_store import create_tile_store, open_tile_store
from cryo_pipeline.io.zarr_store import read_volume_zarr
from cryo_pipeline.models import UNetPlusPlus3d
from cryo_pipeline.ops.blending import tile_origins_3d
from cryo_pipeline.stitch.dask_blend import stitch_tile_stores

SHAPE, TILE, OVERLAP, N_GROUPS = (40, 70, 52), 32, 8, 3  # no axis a multiple of the tile
TILT = (-60.0, 45.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Identity(nn.Identity):
    divisor = 8


def _volume(shape=SHAPE, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 3 + 10).astype(np.float32)


def _random_unet():
    """A small untrained U-Net++ that is NOT the identity: its zero-initialised head gets seeded weights."""
    torch.manual_seed(0)
    model = UNetPlusPlus3d(base_channels=4, depth=2)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=generator) * 0.3)
        model.head.bias.copy_(torch.randn(model.head.bias.shape, generator=generator) * 0.1)
    return model


@pytest.mark.parametrize(("n", "n_groups"), [(60, 3), (61, 3), (62, 3), (7, 7), (5, 8), (1, 1), (100, 9)])
def test_groups_partition_the_tiles_exactly(n, n_groups):
    origins = np.zeros((n, 3), dtype=np.int64)
    slices = [tile_group(origins, group=g, n_groups=n_groups) for g in range(n_groups)]
    covered = np.concatenate([np.arange(n)[s] for s in slices])
    np.testing.assert_array_equal(covered, np.arange(n))  # in order, each tile once
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_tile_group_rejects_bad_groups():
    origins = np.zeros((10, 3))
    with pytest.raises(ValueError, match=r"group 3 must be in \[0, n_groups=3\)"):
        tile_group(origins, group=3, n_groups=3)
    with pytest.raises(ValueError, match="n_groups must be >= 1"):
        tile_group(origins, group=0, n_groups=0)


def test_group_origins_are_the_grid_in_order():
    grid = tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    parts = [group_tile_origins(SHAPE, tile_px=TILE, overlap_px=OVERLAP, group=g, n_groups=N_GROUPS)
             for g in range(N_GROUPS)]
    np.testing.assert_array_equal(np.concatenate(parts), grid)


def _split_and_stitch(tmp_path, volume, model, **kwargs):
    stores = []
    for g in range(N_GROUPS):
        tiles, origins = predict_tile_group(volume, model, tile_px=TILE, overlap_px=OVERLAP, group=g,
                                            n_groups=N_GROUPS, progress=False, **kwargs)
        assert tiles.dtype == np.float32 and tiles.shape == (len(origins), TILE, TILE, TILE)
        path = tmp_path / f"group_{g}.zarr"
        write_tile_store(path, tiles, origins, volume_shape_zyx=volume.shape, tile_px=TILE, overlap_px=OVERLAP,
                         voxel_size_angstrom=9.0, group=g, n_groups=N_GROUPS)
        stores.append(path)
    stitch_tile_stores(stores, tmp_path / "stitched.zarr", chunks=(16, 32, 32))
    out, attrs = read_volume_zarr(tmp_path / "stitched.zarr")
    assert attrs["voxel_size_angstrom"] == 9.0
    return out


def test_identity_split_and_stitched_equals_predict_tiled(tmp_path):
    volume = _volume()
    reference = predict_tiled(volume, Identity(), tile_px=TILE, overlap_px=OVERLAP, progress=False)
    out = _split_and_stitch(tmp_path, volume, Identity())
    np.testing.assert_allclose(out, reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out, volume, atol=1e-5, rtol=0)


@pytest.mark.parametrize("keep_measured", [False, True])
def test_random_unet_split_and_stitched_equals_predict_tiled(tmp_path, keep_measured):
    volume, model = _volume(seed=2), _random_unet()
    kwargs = dict(batch_size=2, keep_measured=keep_measured, tilt_range_deg=TILT)
    reference = predict_tiled(volume, model, tile_px=TILE, overlap_px=OVERLAP, progress=False, **kwargs)
    assert np.abs(reference - volume).mean() > 0.1  # the model does something
    out = _split_and_stitch(tmp_path, volume, model, **kwargs)
    np.testing.assert_allclose(out, reference, atol=1e-5, rtol=0)


def test_group_uses_whole_volume_statistics(tmp_path):
    """Normalisation is the whole tomogram's, so a group's tiles match the same tiles of one job."""

    class Zero(nn.Module):
        divisor = 8

        def forward(self, x):
            return torch.zeros_like(x)

    volume = _volume()
    volume[:, :35] += 50.0
    tiles, _ = predict_tile_group(volume, Zero(), tile_px=TILE, overlap_px=OVERLAP, group=2, n_groups=3,
                                  progress=False)
    np.testing.assert_allclose(tiles, volume.mean(dtype=np.float64), rtol=1e-5)


def test_streams_into_a_tile_store(tmp_path):
    volume, model = _volume(), _random_unet()
    expected, origins = predict_tile_group(volume, model, tile_px=TILE, overlap_px=OVERLAP, group=1, n_groups=3,
                                           batch_size=3, progress=False)
    store = create_tile_store(tmp_path / "g.zarr", origins=origins, volume_shape_zyx=SHAPE, tile_px=TILE,
                              overlap_px=OVERLAP, voxel_size_angstrom=4.0, group=1, n_groups=3)
    out, _ = predict_tile_group(volume, model, tile_px=TILE, overlap_px=OVERLAP, group=1, n_groups=3, batch_size=3,
                                out=store, progress=False)
    assert out is store
    array, attrs = open_tile_store(tmp_path / "g.zarr")
    np.testing.assert_allclose(array[...], expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(attrs["origins"], origins)
    assert (attrs["group"], attrs["n_groups"], attrs["tile_px"], attrs["overlap_px"]) == (1, 3, (TILE,) * 3,
                                                                                          (OVERLAP,) * 3)
    assert attrs["volume_shape_zyx"] == SHAPE and array.chunks == (1, TILE, TILE, TILE)
    with pytest.raises(ValueError, match=r"out must be float32 of shape \(\d+, 32, 32, 32\)"):
        predict_tile_group(volume, model, tile_px=TILE, overlap_px=OVERLAP, group=0, n_groups=3,
                           out=np.zeros((1, 32, 32, 32), np.float32), progress=False)


def test_more_groups_than_tiles_gives_empty_groups_that_still_stitch(tmp_path):
    volume = _volume((32, 40, 32))  # 2 tiles
    stores = []
    for g in range(4):
        tiles, origins = predict_tile_group(volume, Identity(), tile_px=TILE, overlap_px=OVERLAP, group=g,
                                            n_groups=4, progress=False)
        assert len(tiles) == (1 if g < 2 else 0)
        stores.append(tmp_path / f"group_{g}.zarr")
        write_tile_store(stores[-1], tiles, origins, volume_shape_zyx=volume.shape, tile_px=TILE,
                         overlap_px=OVERLAP, voxel_size_angstrom=1.0, group=g, n_groups=4)
    stitch_tile_stores(stores, tmp_path / "out.zarr")
    np.testing.assert_allclose(read_volume_zarr(tmp_path / "out.zarr")[0], volume, atol=1e-5, rtol=0)


def test_axis_thinner_than_the_tile_is_refused_with_advice():
    with pytest.raises(ValueError, match=r"thinner than the tile.*along z \(20 < 32\).*tile_px <= 20.*n_jobs: 1"):
        predict_tile_group(_volume((20, 70, 52)), Identity(), tile_px=TILE, overlap_px=OVERLAP, group=0,
                           n_groups=2, progress=False)
