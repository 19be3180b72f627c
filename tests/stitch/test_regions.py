"""Region tasks of the stitch: exact blends, sums that replace passes over the volume, the pyramid hook."""

from __future__ import annotations

import pickle

import mrcfile
import numpy as np
import pytest
import zarr

from cryo_pipeline.io.mrc import read_mrc, read_mrc_header
from cryo_pipeline.io.tile_store import write_tile_store
from cryo_pipeline.io.zarr_store import read_volume_zarr
from cryo_pipeline.ops.blending import blend_region_3d, tile_origins_1d, tile_origins_3d
from cryo_pipeline.ops.slabs import plan_slabs, seam_ratio
from cryo_pipeline.stitch.dask_blend import read_tile_layout, stitch_tile_stores
from cryo_pipeline.stitch.regions import plan_regions, region_memory_bytes
from cryo_pipeline.stitch.seams import row_step_means_zarr

SHAPE, TILE, OVERLAP = (45, 52, 61), (16, 20, 24), (4, 6, 5)  # CryoGEN-like 3-D grid, no axis a multiple
VOXEL = 8.0


def _grid_stores(tmp_path, tiles, origins, shape=SHAPE, tile=TILE, overlap=OVERLAP, n_stores=3):
    paths = []
    for g in range(n_stores):
        path = tmp_path / f"group_{g}.zarr"
        write_tile_store(path, tiles[g::n_stores], origins[g::n_stores], volume_shape_zyx=shape, tile_px=tile,
                         overlap_px=overlap, voxel_size_angstrom=VOXEL, group=g, n_groups=n_stores)
        paths.append(path)
    return paths


def _coverage(shape, tile, overlap):
    """Number of tiles covering each voxel (product of the per-axis counts)."""
    counts = []
    for n, t, o in zip(shape, tile, overlap, strict=True):
        c = np.zeros(n, dtype=int)
        for a in tile_origins_1d(n, tile=t, overlap=o):
            c[a : a + t] += 1
        counts.append(c)
    return counts[0][:, None, None] * counts[1][None, :, None] * counts[2][None, None, :]


def test_3d_tile_grid_single_cover_voxels_are_bit_exact_and_overlaps_are_the_weighted_mean(tmp_path):
    """Tiles that disagree (a crop plus each tile's own noise): one tile → its value, bit for bit;
    overlaps → Σ w·tile / Σ w (float64 reference) within float32 rounding; exact crops → the volume."""
    rng = np.random.default_rng(5)
    volume = (rng.standard_normal(SHAPE) * 2 + 5).astype(np.float32)
    origins = tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    crops = np.stack([volume[z : z + TILE[0], y : y + TILE[1], x : x + TILE[2]] for z, y, x in origins])
    noisy = crops + rng.standard_normal(crops.shape).astype(np.float32)
    single = _coverage(SHAPE, TILE, OVERLAP) == 1
    assert 0.05 < single.mean() < 0.6  # both kinds of voxels are tested
    stitch_tile_stores(_grid_stores(tmp_path / "n", noisy, origins), tmp_path / "noisy.zarr", chunks=(16, 16, 16))
    out = read_volume_zarr(tmp_path / "noisy.zarr")[0]
    owner = np.full(SHAPE, np.nan, dtype=np.float32)
    for tile, (z, y, x) in zip(noisy, origins, strict=True):
        box = (slice(z, z + TILE[0]), slice(y, y + TILE[1]), slice(x, x + TILE[2]))
        owner[box] = np.where(single[box], tile, owner[box])
    np.testing.assert_array_equal(out[single], owner[single])
    reference = blend_region_3d((0, 0, 0), SHAPE, origins=origins, tile_zyx=TILE, overlap_zyx=OVERLAP,
                                read_tile=lambda i, box: noisy[i][box])
    np.testing.assert_allclose(out, reference, rtol=4e-7, atol=4e-7 * np.abs(reference).max())
    stitch_tile_stores(_grid_stores(tmp_path / "c", crops, origins), tmp_path / "crops.zarr", chunks=(16, 16, 16))
    np.testing.assert_array_equal(read_volume_zarr(tmp_path / "crops.zarr")[0], volume)


def test_tasks_return_the_mrc_header_statistics_and_write_the_same_voxels(tmp_path):
    rng = np.random.default_rng(6)
    volume = (rng.standard_normal(SHAPE) * 3 + 40).astype(np.float32)
    origins = tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    crops = np.stack([volume[z : z + TILE[0], y : y + TILE[1], x : x + TILE[2]] for z, y, x in origins])
    summary = stitch_tile_stores(_grid_stores(tmp_path, crops, origins), tmp_path / "v.zarr", chunks=(8, 16, 32),
                                 out_mrc=tmp_path / "v.mrc", mrc_labels=["test label"], threads=2)
    mrc = read_mrc(tmp_path / "v.mrc")
    np.testing.assert_array_equal(mrc.data, volume)
    assert mrc.voxel_size_angstrom == VOXEL
    v64 = volume.astype(np.float64)
    assert summary.count == volume.size and (summary.minimum, summary.maximum) == (volume.min(), volume.max())
    assert summary.mean == pytest.approx(v64.mean(), rel=1e-7)
    assert summary.rms == pytest.approx(v64.std(), rel=1e-5)
    with mrcfile.open(tmp_path / "v.mrc", header_only=True) as handle:
        header = handle.header
        for key, value in (("dmin", v64.min()), ("dmax", v64.max()), ("dmean", v64.mean()), ("rms", v64.std())):
            assert float(header[key]) == pytest.approx(value, rel=1e-5), key
    assert read_mrc_header(tmp_path / "v.mrc")["labels"][0] == "test label"


def test_nan_voxels_leave_no_mrc(tmp_path):
    origins = tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    tiles = np.ones((len(origins), *TILE), np.float32)
    tiles[3, 2, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        stitch_tile_stores(_grid_stores(tmp_path, tiles, origins), None, out_mrc=tmp_path / "v.mrc")
    assert not (tmp_path / "v.mrc").exists() and sorted(p.name for p in tmp_path.iterdir() if p.name[0] == ".") == []


def test_cn_seam_row_steps_from_the_tasks_equal_a_pass_over_the_stitched_volume(tmp_path):
    rng = np.random.default_rng(7)
    shape = (19, 70, 37)
    plan = plan_slabs(shape[1], slab_px=12, halo_px=3)
    stores = []
    for i in range(plan.n_slabs):  # each slab its own smooth field: the seams are real
        start, stop = plan.window(i)
        tile = (np.cumsum(rng.standard_normal((shape[0], plan.window_px, shape[2])), axis=1) * 0.1 + i)
        path = tmp_path / f"slab_{i}.zarr"
        write_tile_store(path, tile[None].astype(np.float32), np.array([[0, start, 0]]), volume_shape_zyx=shape,
                         tile_px=(shape[0], plan.window_px, shape[2]), overlap_px=(0, plan.blend_overlap_px, 0),
                         voxel_size_angstrom=VOXEL, group=i, n_groups=plan.n_slabs,
                         grid_origins_zyx=[[0], list(plan.origins_y), [0]], chunk_px=(8, plan.window_px, 16))
        stores.append(path)
    summary = stitch_tile_stores(stores, tmp_path / "cn.zarr", chunks=(8, 16, 16), seam_steps=True, threads=2,
                                 memory_mib=0.05)  # a tiny budget: several regions in x
    assert summary.n_tasks > 3
    passed = row_step_means_zarr(tmp_path / "cn.zarr")
    np.testing.assert_allclose(summary.row_step_means, passed, rtol=1e-5)
    assert seam_ratio(summary.row_step_means, plan.boundaries_y) == pytest.approx(
        seam_ratio(passed, plan.boundaries_y), rel=1e-5)


class _PyramidLevel:
    """A block hook that writes each band, 2×-downsampled (mean of 2×2×2, odd edges alone), into a level store."""

    def __init__(self, path):
        self.path = str(path)

    def __call__(self, lo, band):
        level = zarr.open_array(self.path, mode="r+")
        small = _mean_pool_2x(band)
        start = [v // 2 for v in lo]
        level[tuple(slice(a, a + n) for a, n in zip(start, small.shape, strict=True))] = small
        return small.shape


def _mean_pool_2x(volume):
    out = volume.astype(np.float64)
    for axis in range(3):
        n = out.shape[axis]
        even = np.take(out, range(0, n - n % 2), axis=axis)
        pairs = even.reshape(*even.shape[:axis], n // 2, 2, *even.shape[axis + 1 :]).mean(axis=axis + 1)
        out = np.concatenate([pairs, np.take(out, range(n - n % 2, n), axis=axis)], axis=axis)
    return out.astype(np.float32)


def test_block_hook_builds_a_pyramid_level_equal_to_downsampling_the_final_volume(tmp_path):
    """Issue 16's hook: each task downsamples what it wrote; no extra pass over the stitched volume."""
    rng = np.random.default_rng(8)
    shape = (37, 45, 50)  # odd sizes: the last half-voxel of an axis is its own mean
    origins = tile_origins_3d(shape, tile_zyx=TILE, overlap_zyx=OVERLAP)
    tiles = rng.standard_normal((len(origins), *TILE)).astype(np.float32)  # disagreeing tiles: a real blend
    chunks = (8, 16, 16)
    half = tuple(-(-n // 2) for n in shape)
    zarr.create_array(store=str(tmp_path / "level1.zarr"), shape=half, chunks=tuple(c // 2 for c in chunks),
                      dtype=np.float32, fill_value=np.nan)
    summary = stitch_tile_stores(_grid_stores(tmp_path, tiles, origins, shape=shape), tmp_path / "s0.zarr",
                                 chunks=chunks, on_block=_PyramidLevel(tmp_path / "level1.zarr"), threads=2,
                                 memory_mib=0.2)
    full = read_volume_zarr(tmp_path / "s0.zarr")[0]
    level1 = zarr.open_array(str(tmp_path / "level1.zarr"), mode="r")[...]
    np.testing.assert_allclose(level1, _mean_pool_2x(full), rtol=0, atol=1e-6)
    assert sum(len(task) for task in summary.block_results) == summary.n_tasks * -(-shape[1] // chunks[1])


@pytest.mark.parametrize("chunks", [(8, 16, 16), (8, 12, 10)])  # (8, 12, 10): odd halves, one task level
def test_ome_zarr_bands_hook_writes_the_same_ome_zarr_as_the_whole_volume(tmp_path, chunks):
    """The stage's hook (issue 16's OME-Zarr) in the tasks: every level equals write_ome_zarr of the result."""
    from cryo_pipeline.io.atomic import atomic_write_path
    from cryo_pipeline.io.ome_zarr import read_ome_zarr, validate_ome_zarr, write_ome_zarr
    from cryo_pipeline.io.volume_outputs import OmeZarrBands

    rng = np.random.default_rng(9)
    shape = (37, 45, 50)
    origins = tile_origins_3d(shape, tile_zyx=TILE, overlap_zyx=OVERLAP)
    tiles = rng.standard_normal((len(origins), *TILE)).astype(np.float32)
    with atomic_write_path(tmp_path / "v.ome.zarr") as tmp:
        hook = OmeZarrBands(tmp, shape, voxel_size_angstrom=VOXEL, chunks=chunks, attributes={"stage": "test"},
                            max_top_px=8)
        hook.piece_px = chunks[2]  # pieces narrower than a band: several writes per band
        shipped = pickle.loads(pickle.dumps(hook))  # what a Dask worker receives
        stitch_tile_stores(_grid_stores(tmp_path, tiles, origins, shape=shape), tmp_path / "s0.zarr", chunks=chunks,
                           on_block=shipped, threads=2, memory_mib=0.2)
        hook.finish()
    assert hook.writer.task_levels == (2 if chunks == (8, 16, 16) else 1)
    full = read_volume_zarr(tmp_path / "s0.zarr")[0]
    write_ome_zarr(tmp_path / "whole.ome.zarr", full, voxel_size_angstrom=VOXEL, chunks=chunks, max_top_px=8)
    levels = validate_ome_zarr(tmp_path / "v.ome.zarr").ome_attributes.multiscales[0].datasets
    assert len(levels) == len(validate_ome_zarr(tmp_path / "whole.ome.zarr").ome_attributes.multiscales[0].datasets)
    for k in range(len(levels)):
        np.testing.assert_allclose(read_ome_zarr(tmp_path / "v.ome.zarr", level=k)[0],
                                   read_ome_zarr(tmp_path / "whole.ome.zarr", level=k)[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(read_ome_zarr(tmp_path / "v.ome.zarr", level=0)[0], full)


def test_region_width_keeps_task_memory_within_budget_whatever_the_volume_width(tmp_path):
    """Regions are one chunk deep and as wide as the memory budget allows: wider volumes, more regions."""
    for width in (64, 256, 1024):
        origins = np.array([[0, y, 0] for y in (0, 24, 48)])
        path = tmp_path / f"w{width}.zarr"
        write_tile_store(path, np.zeros((3, 16, 32, width), np.float32), origins, volume_shape_zyx=(16, 80, width),
                         tile_px=(16, 32, width), overlap_px=(0, 8, 0), voxel_size_angstrom=1.0,
                         grid_origins_zyx=[[0], [0, 24, 48], [0]])
        layout = read_tile_layout([path])
        regions = plan_regions(layout, (8, 16, 16), memory_mib=0.5)
        widths = {r.hi[2] - r.lo[2] for r in regions}
        assert max(region_memory_bytes(layout, (8, 16, 16), w) for w in widths) <= 0.5 * 2**20
        assert sum(r.hi[2] - r.lo[2] for r in regions if r.lo[0] == 0) == width
    assert len(regions) > 2
