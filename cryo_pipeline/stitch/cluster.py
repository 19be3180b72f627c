"""Dask clusters for the stitch: a local cluster sized from the rule's threads, or a running scheduler."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["start_cluster"]


@contextmanager
def start_cluster(*, threads: int, memory_limit_mb: int | None = None,
                  scheduler_address: str | None = None) -> Iterator[Any]:
    """A Dask ``distributed.Client`` for the stitch, closed (with its cluster) on exit.

    Parameters
    ----------
    threads : int
        Workers of the local cluster: one single-threaded **process** each (numpy blending
        holds the GIL), i.e. the rule's ``threads``.
    memory_limit_mb : int, optional
        Memory of the whole job in MB (10⁶ bytes), split evenly between the workers;
        None = Dask's "auto" (the machine's or cgroup's memory divided by the workers).
    scheduler_address : str, optional
        Connect to this running scheduler (e.g. ``tcp://host:8786`` of a dask-jobqueue
        cluster) instead of starting a local one; ``threads`` is then ignored.

    Yields
    ------
    distributed.Client
    """
    from distributed import Client, LocalCluster

    if scheduler_address is None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1 for the local Dask cluster, got {threads}")
    if memory_limit_mb is not None and memory_limit_mb <= 0:
        raise ValueError(f"memory_limit_mb must be > 0, got {memory_limit_mb}")
    chatter = logging.getLogger("distributed")  # the scheduler logs every worker event at INFO
    level = chatter.level
    chatter.setLevel(max(logging.WARNING, chatter.getEffectiveLevel()))
    try:
        if scheduler_address:
            with Client(scheduler_address) as client:
                yield client
            return
        memory = "auto" if memory_limit_mb is None else int(memory_limit_mb * 1e6 / int(threads))
        with (LocalCluster(n_workers=int(threads), threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit=memory) as cluster, Client(cluster) as client):
            yield client
    finally:
        chatter.setLevel(level)
