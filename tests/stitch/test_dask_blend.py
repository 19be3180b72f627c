"""The shared Dask stitcher: exact for crops, strict about coverage, works on a LocalCluster."""

from __future__ import annotations

import os
import re
import threading

import numpy as np
import pytest

from cryo_pipeline.io.mrc import read_mrc
from cryo_pipeline.io.tile_store import write_tile_store
from cryo_pipeline.io.zarr_store import open_volume_zarr, read_volume_zarr
from cryo_pipeline.ops.blending import tile_origins_3d
from cryo_pipeline.stitch.cluster import start_cluster
from cryo_pipeline.stitch.dask_blend import read_tile_layout, stitch_tile_stores

SHAPE = (37, 50, 29)  # no axis a multiple of the tile or the chunk
TILE, OVERLAP = (16, 24, 12), (4, 6, 3)
VOXEL, TILT = 6.5, (-55.0, 48.0)


def _volume(shape=SHAPE, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 2 + 5).astype(np.float32)


def _crops(volume, origins, tile=TILE):
    return np.stack([volume[z : z + tile[0], y : y + tile[1], x : x + tile[2]] for z, y, x in origins])


def _stores(tmp_path, volume, groups, *, tile=TILE, overlap=OVERLAP, voxel=VOXEL):
    """One tile store per list of grid indices in ``groups``; the crops of ``volume``."""
    origins = tile_origins_3d(volume.shape, tile_zyx=tile, overlap_zyx=overlap)
    paths = []
    for g, index in enumerate(groups):
        path = tmp_path / f"group_{g}.zarr"
        write_tile_store(path, _crops(volume, origins[index], tile), origins[index], volume_shape_zyx=volume.shape,
                         tile_px=tile, overlap_px=overlap, voxel_size_angstrom=voxel, group=g,
                         n_groups=len(groups), tilt_min_deg=TILT[0], tilt_max_deg=TILT[1])
        paths.append(path)
    return paths, origins


def test_exact_crops_stitch_back_to_the_volume(tmp_path):
    volume = _volume()
    n = len(tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP))
    order = np.random.default_rng(1).permutation(n)  # stores hold scattered, unordered tiles
    paths, _ = _stores(tmp_path, volume, [order[: n // 3], order[n // 3 : n // 2], order[n // 2 :]])
    stitch_tile_stores(paths, tmp_path / "out.zarr", chunks=(16, 20, 32))
    out, attrs = read_volume_zarr(tmp_path / "out.zarr")
    assert out.shape == SHAPE and out.dtype == np.float32
    np.testing.assert_allclose(out, volume, atol=1e-6, rtol=0)
    assert attrs["voxel_size_angstrom"] == VOXEL and (attrs["tilt_min_deg"], attrs["tilt_max_deg"]) == TILT
    assert open_volume_zarr(tmp_path / "out.zarr").chunks == (16, 20, 29)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["group_0.zarr", "group_1.zarr", "group_2.zarr",
                                                          "out.zarr"]  # no temporary left


def test_tiles_are_blended_with_the_window_not_overwritten(tmp_path):
    """Tiles that disagree (each one constant = its index) give a smooth, bounded blend."""
    origins = tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP)
    tiles = np.broadcast_to(np.arange(len(origins), dtype=np.float32)[:, None, None, None],
                            (len(origins), *TILE))
    write_tile_store(tmp_path / "t.zarr", tiles, origins, volume_shape_zyx=SHAPE, tile_px=TILE, overlap_px=OVERLAP,
                     voxel_size_angstrom=VOXEL)
    stitch_tile_stores([tmp_path / "t.zarr"], tmp_path / "out.zarr", chunks=(8, 8, 8))
    out, _ = read_volume_zarr(tmp_path / "out.zarr")
    assert out[0, 0, 0] == pytest.approx(0.0, abs=1e-6) and out[-1, -1, -1] == pytest.approx(len(origins) - 1)
    assert out.min() >= 0 and out.max() <= len(origins) - 1
    assert len(np.unique(out)) > len(origins)  # values between tiles: they were blended


def test_missing_tile_is_named(tmp_path):
    volume = _volume()
    n = len(tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP))
    paths, origins = _stores(tmp_path, volume, [np.arange(0, 5), np.arange(6, n)])
    with pytest.raises(ValueError, match=re.escape(f"1 tile(s) missing, origins [{origins[5].tolist()}]")):
        stitch_tile_stores(paths, tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_duplicated_tile_is_named_with_its_stores(tmp_path):
    volume = _volume()
    n = len(tile_origins_3d(SHAPE, tile_zyx=TILE, overlap_zyx=OVERLAP))
    paths, origins = _stores(tmp_path, volume, [np.arange(0, 4), np.arange(3, n)])
    with pytest.raises(ValueError, match=r"1 tile\(s\) stored more than once") as err:
        read_tile_layout(paths)
    assert str(origins[3].tolist()) in str(err.value)
    assert "group_0.zarr" in str(err.value) and "group_1.zarr" in str(err.value)


def test_stores_of_different_grids_or_off_grid_tiles_are_refused(tmp_path):
    volume = _volume()
    (a,), _ = _stores(tmp_path / "a", volume, [slice(None)])
    (b,), _ = _stores(tmp_path / "b", volume, [slice(None)], overlap=(4, 6, 2))
    with pytest.raises(ValueError, match="tile stores disagree"):
        read_tile_layout([a, b])
    write_tile_store(tmp_path / "off.zarr", np.zeros((1, *TILE), np.float32), [[1, 0, 0]], volume_shape_zyx=SHAPE,
                     tile_px=TILE, overlap_px=OVERLAP, voxel_size_angstrom=VOXEL)
    with pytest.raises(ValueError, match=r"not on the grid.*\[\[1, 0, 0\]\]"):
        read_tile_layout([tmp_path / "off.zarr"])
    with pytest.raises(ValueError, match="no tile stores"):
        read_tile_layout([])


def test_local_runs_use_threads_of_this_process_without_a_cluster(tmp_path):
    volume = _volume((48, 40, 36), seed=3)
    n = len(tile_origins_3d(volume.shape, tile_zyx=TILE, overlap_zyx=OVERLAP))
    paths, _ = _stores(tmp_path, volume, [np.arange(0, n // 2), np.arange(n // 2, n)])
    ran_in = set()
    with start_cluster(threads=2, memory_limit_mb=1000) as client:
        assert client is None  # nothing to start: the stitch's own thread pool
        summary = stitch_tile_stores(paths, tmp_path / "out.zarr", chunks=(16, 16, 16), client=client, threads=2,
                                     on_block=lambda lo, band: ran_in.add((os.getpid(), threading.get_ident())))
    out, attrs = read_volume_zarr(tmp_path / "out.zarr")
    np.testing.assert_array_equal(out, volume)
    assert attrs["voxel_size_angstrom"] == VOXEL and attrs["axes"] == "zyx"
    assert summary.n_tasks == 3 and {pid for pid, _ in ran_in} == {os.getpid()}
    assert threading.get_ident() not in {thread for _, thread in ran_in}  # pool threads, not the caller's


@pytest.mark.slow
def test_tasks_run_on_the_workers_of_a_running_scheduler(tmp_path):
    """The distributed path (a scheduler address; SLURM workers use the same code): worker processes, exact."""
    from distributed import LocalCluster

    volume = _volume((40, 44, 36), seed=4)
    n = len(tile_origins_3d(volume.shape, tile_zyx=TILE, overlap_zyx=OVERLAP))
    paths, _ = _stores(tmp_path, volume, [np.arange(0, n // 3), np.arange(n // 3, n)])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      local_directory=str(tmp_path / "dask")) as cluster, \
            start_cluster(threads=1, scheduler_address=cluster.scheduler_address) as client:
        worker_pids = set(client.run(os.getpid).values())
        summary = stitch_tile_stores(paths, tmp_path / "out.zarr", chunks=(8, 16, 16), client=client,
                                     out_mrc=tmp_path / "out.mrc", on_block=_pid_and_threads)
    np.testing.assert_array_equal(read_volume_zarr(tmp_path / "out.zarr")[0], volume)
    np.testing.assert_array_equal(read_mrc(tmp_path / "out.mrc").data, volume)
    ran = {r for task in summary.block_results for r in task}
    assert {pid for pid, _ in ran} <= worker_pids and os.getpid() not in {pid for pid, _ in ran}
    assert {blas for _, blas in ran} == {1}  # each worker's BLAS/OpenMP pools pinned to one thread


def _pid_and_threads(lo, band):
    from threadpoolctl import threadpool_info

    return os.getpid(), max((p["num_threads"] for p in threadpool_info()), default=1)


def test_start_cluster_rejects_bad_sizes():
    with pytest.raises(ValueError, match="threads must be >= 1"), start_cluster(threads=0):
        pass
    with pytest.raises(ValueError, match="memory_limit_mb must be > 0"), start_cluster(threads=1, memory_limit_mb=0):
        pass


@pytest.mark.parametrize("height, slab, halo", [(50, 8, 2), (50, 7, 3), (50, 16, 0)])
def test_cn_slab_windows_that_are_exact_crops_stitch_back_to_the_volume(tmp_path, height, slab, halo):
    """Issue 5: slab stores on the plan's irregular y-grid (chunked tiles) return the volume to 1e-6."""
    from cryo_pipeline.ops.slabs import plan_slabs

    volume = _volume((21, height, 33), seed=3)
    plan = plan_slabs(height, slab_px=slab, halo_px=halo)
    stores = []
    for i in range(plan.n_slabs):
        start, stop = plan.window(i)
        path = tmp_path / f"slab_{i}.zarr"
        write_tile_store(path, volume[None, :, start:stop], np.array([[0, start, 0]]), volume_shape_zyx=volume.shape,
                         tile_px=(21, plan.window_px, 33), overlap_px=(0, plan.blend_overlap_px, 0),
                         voxel_size_angstrom=VOXEL, group=i, n_groups=plan.n_slabs,
                         grid_origins_zyx=[[0], list(plan.origins_y), [0]], chunk_px=(8, plan.window_px, 8))
        stores.append(path)
    stitch_tile_stores(stores, tmp_path / "out.zarr", chunks=(8, 16, 16))
    out, attrs = read_volume_zarr(tmp_path / "out.zarr")
    assert np.max(np.abs(out - volume)) <= 1e-6 * np.max(np.abs(volume))
    assert attrs["voxel_size_angstrom"] == VOXEL
    # a missing slab is named, not silently blended around
    with pytest.raises(ValueError, match=r"1 tile\(s\) missing"):
        read_tile_layout(stores[:-1])
