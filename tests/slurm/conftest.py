"""The session's real SLURM cluster, started once for the tests in tests/slurm/ and always stopped.

Where SLURM cannot run (not root, no apt-get, a daemon does not start) the tests are
skipped with the reason (``pytest -ra`` prints it); ``CRYO_REQUIRE_SLURM=1`` turns that
skip into a failure, for a CI runner that must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .cluster import SlurmCluster, SlurmUnavailable, start_slurm_cluster


def _unavailable(reason: str) -> None:
    if os.environ.get("CRYO_REQUIRE_SLURM") == "1":
        pytest.fail(f"{reason} (CRYO_REQUIRE_SLURM=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A single-node SLURM on 127.0.0.1 (partition ``debug``, 64 CPUs, 8 fake GPUs), stopped at the end."""
    if os.geteuid() != 0:
        _unavailable(f"a test SLURM cluster needs root (slurmd starts the jobs); running as uid {os.geteuid()}")
    try:
        cluster = start_slurm_cluster(tmp_path_factory.mktemp("slurm") / "state")
    except SlurmUnavailable as err:
        _unavailable(str(err))
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]  # sbatch/squeue of library code find this cluster
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        cluster.stop()
