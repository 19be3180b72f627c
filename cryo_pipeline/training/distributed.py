"""Data-parallel training across processes (torchrun; NCCL on GPUs, gloo on CPUs).

Each step runs the generator several times (x̂, x̃, the consistency pass) before one
backward, which ``DistributedDataParallel``'s per-forward gradient hooks do not allow
without ``static_graph``. So parameters are broadcast from rank 0 once, and gradients
are averaged with one all-reduce per parameter after each backward: the same algorithm
as DDP, made explicit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process sits: ``rank`` of ``world_size``; rank 0 writes the outputs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints, logs and the model."""
        return self.rank == 0


def setup_process_group(*, use_cuda: bool) -> ProcessGroup:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1, else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return ProcessGroup()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return ProcessGroup(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)


def broadcast_parameters(module: torch.nn.Module, group: ProcessGroup) -> None:
    """Give every process rank 0's parameters and buffers."""
    if group.world_size > 1:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(module: torch.nn.Module, group: ProcessGroup) -> None:
    """All-reduce (mean) the gradients of ``module`` across processes."""
    if group.world_size > 1:
        for parameter in module.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
                parameter.grad /= group.world_size


def gather_objects(obj, group: ProcessGroup) -> list:
    """Every process's ``obj`` (picklable), in rank order; collective, a 1-list for one process."""
    if group.world_size <= 1:
        return [obj]
    gathered: list = [None] * group.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def teardown_process_group(group: ProcessGroup) -> None:
    """Leave the process group (no-op for a single process)."""
    if group.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def multi_gpu_relaunch_command(argv: list[str], *, device: str) -> list[str] | None:
    """The torchrun command that reruns this CLI call on every visible GPU, or None.

    Used when one job (e.g. one SLURM job with ``--gpus=4``) sees several GPUs and was
    not itself started by torchrun: the same ``cryo-pipeline`` arguments run as one
    process per GPU. ``device`` is ``execution.device``.
    """
    if device == "cpu" or "WORLD_SIZE" in os.environ or not torch.cuda.is_available():
        return None
    n_gpus = torch.cuda.device_count()
    if n_gpus < 2:
        return None
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_gpus}",
            "-m", "cryo_pipeline.cli.main", *argv]


def relaunch_on_every_gpu(argv: list[str], *, device: str) -> bool:
    """Rerun the ``cryo-pipeline`` call ``argv`` under torchrun, one process per visible GPU.

    Returns True when it did (the processes finished; a failure raises
    ``subprocess.CalledProcessError``), False when this process should train itself: one
    GPU or none, ``device`` ``cpu``, or already inside torchrun.
    """
    command = multi_gpu_relaunch_command(argv, device=device)
    if command is None:
        return False
    import subprocess

    subprocess.run(command, check=True)
    return True
