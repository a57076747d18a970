"""Multi-process runs under ``torchrun``: process group, rank facts and the few collectives the searches use.

``torchrun --nproc_per_node=K -m fastpolicy.cli ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_from_env` joins the process group (NCCL on GPUs, gloo on
CPUs) and pins each process to GPU ``LOCAL_RANK``. Without those variables everything
here is a no-op for a single process, so the same code runs both ways.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the process that writes checkpoints, logs and plots."""
    return rank() == 0


def init_from_env(device: str | None = None) -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); returns whether
    this run is distributed. ``device``: ``"gpu"``/``"cpu"``/None (GPU if torch sees one)
    picks NCCL or gloo."""
    if is_distributed():
        return True
    if env_int("WORLD_SIZE", 1) <= 1:
        return False
    for name in ("RANK", "LOCAL_RANK"):
        env_int(name, 0)  # a nonsense value is named here, not deep in torch
    on_gpu = device == "gpu" or (device is None and torch.cuda.is_available())
    if on_gpu:
        torch.cuda.set_device(env_int("LOCAL_RANK", 0))
    dist.init_process_group("nccl" if on_gpu else "gloo")
    return True


def env_int(name: str, default: int) -> int:
    """The environment variable ``name`` as an integer ≥ 0 (``default`` if unset); ValueError
    naming the variable and its value otherwise (torchrun sets these; a hand-set one may be wrong)."""
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"environment variable {name}={text!r} is not an integer ≥ 0 (torchrun sets it)")
    return value


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes, in place (unchanged for one process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` (picklable) on every rank."""
    if not is_distributed():
        return obj
    holder = [obj if rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def broadcast_tensors(tensors, src: int = 0) -> None:
    """Overwrite each tensor with rank ``src``'s, in place."""
    if is_distributed():
        for tensor in tensors:
            dist.broadcast(tensor.data, src=src)


def all_gather_object(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` for one process)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def per_rank_batch(batch: int) -> int:
    """A preset's global N split evenly over the processes (ValueError if it does not divide)."""
    size = world_size()
    if batch % size:
        raise ValueError(
            f"the global batch N={batch} does not divide over {size} processes; pick a multiple of {size} (--batch)"
        )
    return batch // size


__all__ = [
    "all_gather_object",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "broadcast_tensors",
    "init_from_env",
    "is_distributed",
    "is_main",
    "per_rank_batch",
    "rank",
    "shutdown",
    "world_size",
]
