"""OME-Zarr volumes: NGFF 0.5 validation, the reference reader, scale = MRC voxel size, pyramid, atomicity."""

import json

import numpy as np
import pytest
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from cryo_pipeline.io.mrc import read_mrc, write_mrc
from cryo_pipeline.io.ome_zarr import OME_ZARR_KEY, read_ome_zarr, validate_ome_zarr, write_ome_zarr
from cryo_pipeline.ops.pyramid import downsample_mean_2x, pyramid_shapes


@pytest.fixture
def volume():
    return np.random.default_rng(0).normal(size=(20, 35, 46)).astype(np.float32)


def test_pyramid_shapes_halve_down_to_the_top_size():
    assert pyramid_shapes((64, 64, 64)) == [(64, 64, 64)]
    assert pyramid_shapes((100, 600, 513)) == [(100, 600, 513), (50, 300, 257), (25, 150, 129)]
    with pytest.raises(ValueError, match="positive"):
        pyramid_shapes((0, 4, 4))


def test_block_mean_is_exact_and_keeps_constants_at_odd_edges():
    block = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    down = downsample_mean_2x(block)
    assert down.shape == (2, 2, 3)
    assert down[0, 0, 0] == pytest.approx(block[:2, :2, :2].mean())
    assert down[1, 1, 2] == pytest.approx(block[2:, 2:4, 4:].mean())  # a 1x2x1 partial block
    np.testing.assert_array_equal(downsample_mean_2x(np.full((5, 7, 3), 2.5, np.float32)), 2.5)


def test_written_volume_validates_and_reads_back_equal_to_the_mrc(tmp_path, volume):
    write_mrc(tmp_path / "volume.mrc", volume, voxel_size_angstrom=13.48)
    mrc = read_mrc(tmp_path / "volume.mrc")
    write_ome_zarr(tmp_path / "volume.ome.zarr", mrc.data, voxel_size_angstrom=mrc.voxel_size_angstrom,
                   attributes={"stage": "test"}, max_top_px=16)
    image = validate_ome_zarr(tmp_path / "volume.ome.zarr")
    multiscale = image.ome_attributes.multiscales[0]
    assert [a.name for a in multiscale.axes] == ["z", "y", "x"] and {a.unit for a in multiscale.axes} == {"angstrom"}
    assert [d.path for d in multiscale.datasets] == ["s0", "s1", "s2"]
    data, scale = read_ome_zarr(tmp_path / "volume.ome.zarr")
    np.testing.assert_array_equal(data, mrc.data)
    assert scale == pytest.approx((mrc.voxel_size_angstrom,) * 3)
    level2, scale2 = read_ome_zarr(tmp_path / "volume.ome.zarr", level=2)
    assert level2.shape == (5, 9, 12) and scale2 == pytest.approx((4 * 13.48,) * 3)
    np.testing.assert_allclose(level2, downsample_mean_2x(downsample_mean_2x(volume)), atol=1e-6)
    attrs = json.loads((tmp_path / "volume.ome.zarr" / "zarr.json").read_text())["attributes"]
    assert attrs["ome"]["version"] == "0.5"
    assert attrs[OME_ZARR_KEY]["voxel_size_angstrom"] == pytest.approx(13.48)
    assert attrs[OME_ZARR_KEY]["stage"] == "test" and "package_version" in json.dumps(attrs[OME_ZARR_KEY])


def test_the_reference_ome_zarr_reader_opens_it(tmp_path, volume):
    """ome-zarr-py's Reader (the library napari-ome-zarr's older releases wrap), headless."""
    write_ome_zarr(tmp_path / "v.ome.zarr", volume, voxel_size_angstrom=7.0, max_top_px=20)
    nodes = list(Reader(parse_url(str(tmp_path / "v.ome.zarr")))())
    image = nodes[0]
    assert [level.shape for level in image.data] == [(20, 35, 46), (10, 18, 23), (5, 9, 12)]
    np.testing.assert_array_equal(np.asarray(image.data[0]), volume)
    transforms = image.metadata["coordinateTransformations"]
    assert transforms[0][0] == {"type": "scale", "scale": [7.0, 7.0, 7.0]}
    assert transforms[1][1] == {"type": "translation", "translation": [3.5, 3.5, 3.5]}


def test_a_failed_write_leaves_nothing_under_the_final_name(tmp_path):
    with pytest.raises(ValueError, match="voxel_size_angstrom must be > 0"):
        write_ome_zarr(tmp_path / "v.ome.zarr", np.zeros((4, 4, 4), np.float32), voxel_size_angstrom=0.0)
    assert list(tmp_path.iterdir()) == []


def test_a_store_without_ngff_metadata_is_one_clear_error(tmp_path, volume):
    import zarr

    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(4, 4, 4), dtype="f4")
    with pytest.raises(ValueError, match=r"plain\.zarr: not a valid OME-Zarr 0\.5 image") as err:
        validate_ome_zarr(tmp_path / "plain.zarr")
    assert "\n" not in str(err.value)


def test_blocks_from_parallel_tasks_give_the_same_pyramid_as_the_whole_volume(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from cryo_pipeline.io.atomic import atomic_write_path
    from cryo_pipeline.io.ome_zarr import OmeZarrBlockWriter

    volume = np.random.default_rng(3).normal(size=(40, 72, 56)).astype(np.float32)
    write_ome_zarr(tmp_path / "whole.ome.zarr", volume, voxel_size_angstrom=4.0, chunks=(16, 16, 16), max_top_px=8)
    blocks = [(z, y, x) for z in range(0, 40, 16) for y in range(0, 72, 16) for x in range(0, 56, 32)]
    np.random.default_rng(0).shuffle(blocks)  # any order, any worker
    with atomic_write_path(tmp_path / "blocks.ome.zarr") as tmp:
        writer = OmeZarrBlockWriter(tmp, volume.shape, voxel_size_angstrom=4.0, chunks=(16, 16, 16), max_top_px=8)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda lo: writer.write_block(lo, volume[lo[0]:lo[0] + 16, lo[1]:lo[1] + 16,
                                                                   lo[2]:lo[2] + 32]), blocks))
        writer.finish()
    assert writer.task_levels == 2 and len(writer.levels) == 5
    for level in range(5):
        whole, _ = read_ome_zarr(tmp_path / "whole.ome.zarr", level=level)
        parts, _ = read_ome_zarr(tmp_path / "blocks.ome.zarr", level=level)
        np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"block origin \(0, 8, 0\) is not on the chunk grid"):
        writer.write_block((0, 8, 0), volume[:16, 8:24, :16])
