"""start_cluster's choices and its SLURM options, without a SLURM cluster (tests/slurm/ runs a real one)."""

from __future__ import annotations

import sys

import pytest

from cryo_pipeline.stitch.cluster import SlurmWorkers, start_cluster

def test_slurm_options_with_or_without_the_config_prefix():
    workers = SlurmWorkers.from_mapping({"workers": 3, "cores_per_worker": 2, "memory_per_worker_mb": 1500,
                                         "walltime": "1-02:00:00", "partition": "short"})
    assert workers == SlurmWorkers(workers=3, cores_per_worker=2, memory_per_worker_mb=1500, walltime="1-02:00:00",
                                   partition="short")
    assert workers.processes == 6
    prefixed = {"slurm_workers": 3, "slurm_cores_per_worker": 2, "slurm_memory_per_worker_mb": 1500,
                "slurm_walltime": "1-02:00:00", "slurm_partition": "short"}  # as in the stitch config section
    assert SlurmWorkers.from_mapping(prefixed) == workers
    assert SlurmWorkers.from_mapping({"partition": None}) == SlurmWorkers() == SlurmWorkers.from_mapping(None)


@pytest.mark.parametrize(("options", "message"), [
    ({"wokers": 2}, r"unknown SLURM option 'wokers' for the Dask stitch; known: workers, cores_per_worker"),
    ({"cluster": "slurm"}, r"unknown SLURM option 'cluster'"),
    ({"workers": 2, "slurm_workers": 3}, r"SLURM option 'workers' given twice"),
    ({"slurm_workers": 0}, r"stitch.slurm_workers must be an integer >= 1, got 0"),
    ({"cores_per_worker": 1.5}, r"stitch.slurm_cores_per_worker must be an integer >= 1, got 1.5"),
    ({"memory_per_worker_mb": True}, r"stitch.slurm_memory_per_worker_mb must be an integer >= 1, got True"),
    ({"walltime": "90"}, r"stitch.slurm_walltime must be HH:MM:SS or D-HH:MM:SS, got '90'"),
])
def test_bad_slurm_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        SlurmWorkers.from_mapping(options)


def test_unknown_cluster_and_conflicting_choices_are_refused():
    with pytest.raises(ValueError, match="unknown Dask cluster 'pbs' for the stitch; use one of local, slurm"), \
            start_cluster(threads=1, cluster="pbs"):
        pass
    with pytest.raises(ValueError, match="either cluster='slurm' or a scheduler_address"), \
            start_cluster(threads=1, cluster="slurm", scheduler_address="tcp://127.0.0.1:8786"):
        pass
    with pytest.raises(ValueError, match="slurm_workers must be an integer >= 1"), \
            start_cluster(threads=1, cluster="slurm", slurm={"workers": -1}):
        pass


def test_slurm_without_dask_jobqueue_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import dask_jobqueue -> ImportError
    with pytest.raises(ImportError, match=r"pip install dask-jobqueue"), start_cluster(threads=1, cluster="slurm"):
        pass


def test_slurm_without_sbatch_says_it_needs_a_submit_host(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    with pytest.raises(RuntimeError, match="needs sbatch on PATH"), \
            start_cluster(threads=1, cluster="slurm", slurm={"workers": 1}, log_directory=tmp_path / "logs"):
        pass
    assert (tmp_path / "logs").is_dir()
