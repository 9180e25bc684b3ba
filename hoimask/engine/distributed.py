"""DDP helpers around ``torch.distributed`` for runs launched by ``torchrun``.

Nothing home-made: ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them,
chooses NCCL with CUDA and gloo otherwise, and returns a
:class:`DistributedContext`. Without those variables it returns a
single-process context and initialises nothing.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from hoimask._checks import ValueRangeError, check_choice

__all__ = [
    "DistributedContext",
    "init_distributed",
    "cleanup_distributed",
    "wrap_model",
    "unwrap_model",
    "all_reduce_mean",
    "all_gather_objects",
    "broadcast_object",
    "barrier",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 for a single process).
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        device: the device this process trains on.
        initialized: whether a process group was created.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """``True`` on rank 0, the process that logs and writes files."""
        return self.rank == 0


def init_distributed(device: str | None = None, backend: str | None = None) -> DistributedContext:
    """Initialise the process group if launched by ``torchrun``.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
            With CUDA each process takes GPU ``LOCAL_RANK``.
        backend: ``"gloo"``, ``"nccl"`` or ``None`` (NCCL for CUDA, gloo for CPU).

    Returns:
        The :class:`DistributedContext`.

    Shape:
        Not applicable.
    """
    if device is not None:
        check_choice(device, ("cpu", "cuda"), name="device", fn="init_distributed")
    use_cuda = torch.cuda.is_available() if device is None else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueRangeError("init_distributed(): argument 'device' is 'cuda' but no CUDA device is available")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or "RANK" not in os.environ:
        dev = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
        return DistributedContext(device=dev)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend is None:
        backend = "nccl" if use_cuda else "gloo"
    check_choice(backend, ("gloo", "nccl"), name="backend", fn="init_distributed")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, initialized=True)


def cleanup_distributed(ctx: DistributedContext, *, wait: bool = True) -> None:
    """Destroy the process group created by :func:`init_distributed` (no-op otherwise).

    Args:
        ctx: the distributed context.
        wait: first wait at a barrier for every rank. Tearing gloo down while
            another rank is still finishing its last collective can abort that
            rank at exit ("terminate called without an active exception"), so a
            normal exit waits. Pass ``False`` on an error path, where the other
            ranks may never reach the barrier (torchrun stops them instead).

    Release what holds the group first: a DDP-wrapped model (and the
    :class:`~hoimask.engine.Trainer` that owns it) keeps the gloo group alive
    after ``destroy_process_group``, so kept in a module-level variable it is
    torn down during interpreter exit, where gloo's worker threads can abort
    the process the same way. Keep trainers local to a function that returns
    before this call, as :func:`~hoimask.engine.cli.run_distributed` does; a
    garbage collection here frees those held only by reference cycles.
    """
    if ctx.initialized and dist.is_initialized():
        if wait:
            dist.barrier()
        gc.collect()  # DDP models left in reference cycles would otherwise hold the group past its destruction
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistributedContext, *, find_unused_parameters: bool = True) -> nn.Module:
    """Move ``model`` to ``ctx.device`` and wrap it in DDP when distributed.

    ``find_unused_parameters`` defaults to ``True`` because ablation switches
    leave some heads without gradients.

    Args:
        model: the module.
        ctx: the distributed context.
        find_unused_parameters: passed to ``DistributedDataParallel``.

    Returns:
        The model (wrapped or not).

    Shape:
        Not applicable.
    """
    model = model.to(ctx.device)
    if not ctx.initialized:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP (or ``torch.compile``) wrapper, else ``model``."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def all_reduce_mean(value: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """Mean of ``value`` over all ranks (a copy; the input is unchanged).

    Shape:
        Output has the input's shape.
    """
    out = value.detach().clone()
    if ctx.initialized:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= ctx.world_size
    return out


def all_gather_objects(obj: object, ctx: DistributedContext) -> list:
    """Gather one picklable object per rank into a list (``[obj]`` when single-process)."""
    if not ctx.initialized:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: object, ctx: DistributedContext, *, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every rank."""
    if not ctx.initialized:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier(ctx: DistributedContext) -> None:
    """Wait for every rank (no-op when single-process)."""
    if ctx.initialized:
        dist.barrier()
