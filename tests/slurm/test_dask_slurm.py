"""The stitch's ``cluster: slurm`` path on the real test cluster: Dask workers as SLURM jobs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from distributed import get_task_stream

from cryo_pipeline.io.tile_store import write_tile_store
from cryo_pipeline.io.zarr_store import read_volume_zarr
from cryo_pipeline.ops.blending import tile_origins_3d
from cryo_pipeline.stitch.cluster import start_cluster
from cryo_pipeline.stitch.dask_blend import stitch_tile_stores

pytestmark = pytest.mark.slurm

SHAPE, TILE, OVERLAP = (30, 41, 27), (16, 16, 12), (4, 4, 3)
WORKER_JOB = "cryo-dask-worker"
HANG_S = 3600  # worker start-up: only a hang-catcher (SLURM queueing and imports take what the machine gives)


def _slurm_options(partition: str, **changes) -> dict:
    return {"workers": 2, "cores_per_worker": 1, "memory_per_worker_mb": 500, "walltime": "00:05:00",
            "partition": partition, **changes}


def _tile_stores(tmp_path, volume: np.ndarray, n_stores: int = 3) -> list:
    """The crops of ``volume`` on the tile grid, dealt round-robin into ``n_stores`` stores."""
    origins = tile_origins_3d(volume.shape, tile_zyx=TILE, overlap_zyx=OVERLAP)
    paths = []
    for g in range(n_stores):
        mine = origins[g::n_stores]
        tiles = np.stack([volume[z : z + TILE[0], y : y + TILE[1], x : x + TILE[2]] for z, y, x in mine])
        path = tmp_path / f"slab_{g}.zarr"
        write_tile_store(path, tiles, mine, volume_shape_zyx=volume.shape, tile_px=TILE, overlap_px=OVERLAP,
                         voxel_size_angstrom=7.0, group=g, n_groups=n_stores)
        paths.append(path)
    return paths


def _worker_jobs(slurm_cluster) -> dict:
    return {j.job_id: j for j in slurm_cluster.jobs().values() if j.name == WORKER_JOB}


def test_stitch_on_dask_workers_that_run_as_slurm_jobs(slurm_cluster, tmp_path):
    volume = (np.random.default_rng(7).standard_normal(SHAPE) * 3 + 1).astype(np.float32)
    stores = _tile_stores(tmp_path, volume)
    before = set(_worker_jobs(slurm_cluster))
    with start_cluster(threads=1, cluster="slurm", slurm=_slurm_options(slurm_cluster.partition),
                       log_directory=tmp_path / "dask_logs",
                       worker_timeout_s=HANG_S) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
        # each worker process runs inside its own SLURM job, and SLURM lists that job as running
        job_of_worker = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
        job_ids = set(job_of_worker.values())
        assert None not in job_ids and len(job_ids) == 2, job_of_worker
        jobs = _worker_jobs(slurm_cluster)
        assert job_ids == set(jobs) - before
        for job_id in job_ids:
            job = jobs[job_id]
            assert (job.state, job.partition, job.cpus) == ("RUNNING", slurm_cluster.partition, 1), job
        with get_task_stream(client) as stream:
            stitch_tile_stores(stores, tmp_path / "out.zarr", chunks=(16, 16, 16), client=client)
        # the blend tasks ran on those SLURM workers (and on nothing else)
        ran_on = {task["worker"] for task in stream.data}
        assert ran_on and ran_on <= set(workers), (ran_on, set(workers))
    out, attrs = read_volume_zarr(tmp_path / "out.zarr")
    np.testing.assert_allclose(out, volume, atol=1e-6, rtol=0)
    assert attrs["voxel_size_angstrom"] == 7.0
    # leaving the context cancels the worker jobs
    states = slurm_cluster.wait_until_finished(job_ids)  # a job left running would end in TIMEOUT (walltime)
    assert set(states.values()) <= {"CANCELLED", "COMPLETED"}, states
    logs = sorted(p.name for p in (tmp_path / "dask_logs").iterdir())
    assert {f"{WORKER_JOB}-{i}.err" for i in job_ids} <= set(logs), logs


def test_unknown_partition_is_refused_before_any_worker_job_is_submitted(slurm_cluster, tmp_path):
    before = set(_worker_jobs(slurm_cluster))
    with pytest.raises(ValueError, match=r"SLURM refuses the Dask worker job \(partition 'nosuch'.*"
                                         r"invalid partition specified: nosuch"), \
            start_cluster(threads=1, cluster="slurm", slurm=_slurm_options("nosuch"), log_directory=tmp_path):
        pass
    assert set(_worker_jobs(slurm_cluster)) == before  # refused at the first sbatch: no worker job was queued


def test_workers_that_do_not_arrive_in_time_are_named_and_cancelled(slurm_cluster, tmp_path):
    before = set(_worker_jobs(slurm_cluster))
    with pytest.raises(RuntimeError, match=r"only 0 of 2 Dask worker process\(es\) connected within 0.01 s "
                                           r"\(2 SLURM job\(s\) in partition 'debug'\); jobs: \d+ \w+"), \
            start_cluster(threads=1, cluster="slurm", slurm=_slurm_options(slurm_cluster.partition),
                          log_directory=tmp_path, worker_timeout_s=0.01):
        pass
    submitted = set(_worker_jobs(slurm_cluster)) - before
    assert len(submitted) == 2
    states = slurm_cluster.wait_until_finished(submitted)  # cancelled, not left to time out
    assert set(states.values()) == {"CANCELLED"}, states
