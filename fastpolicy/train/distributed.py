"""Multi-process runs under ``torchrun``: process group, rank facts and the few collectives the searches use.

``torchrun --nproc_per_node=K -m fastpolicy.cli ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_from_env` joins the process group (NCCL on GPUs, gloo on
CPUs) and pins each process to GPU ``LOCAL_RANK``. Without those variables everything
here is a no-op for a single process, so the same code runs both ways.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import tempfile

import torch
import torch.distributed as dist

from ..errors import UserError

log = logging.getLogger("fastpolicy")

RENDEZVOUS_TIMEOUT_ENV = "FASTPOLICY_RENDEZVOUS_TIMEOUT"
"""The environment variable that sets ``--rendezvous-timeout`` (seconds)."""


class RendezvousTimeout(UserError, TimeoutError):
    """The other ``torchrun`` processes did not join in time; the message names the address,
    how many joined when it says so, and the flag that sets the wait."""


class RendezvousError(UserError):
    """This process could not join the group at all (an address in use, a host that does not
    resolve); the message names the address and torch's reason."""


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the process that writes checkpoints, logs and plots."""
    return rank() == 0


def init_from_env(device: str | None = None, timeout_s: float | None = None) -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); returns whether
    this run is distributed. ``device``: ``"gpu"``/``"cpu"``/None (GPU if torch sees one)
    picks NCCL or gloo.

    ``timeout_s``: how long to wait for the other processes (seconds; None: the environment
    variable ``FASTPOLICY_RENDEZVOUS_TIMEOUT``, else torch's default, 30 minutes for gloo and
    10 for NCCL). torch keeps the same limit for every later collective (barriers at
    checkpoints, gathers), so it must exceed the longest gap between them. The wait is logged
    with what it waits for; a peer that never comes raises :class:`RendezvousTimeout`, any
    other failure to join :class:`RendezvousError`.
    """
    if is_distributed():
        return True
    world = env_int("WORLD_SIZE", 1)
    if world <= 1:
        return False
    me = env_int("RANK", 0)  # a nonsense value is named here, not deep in torch
    local = env_int("LOCAL_RANK", 0)
    timeout_s = rendezvous_timeout(timeout_s)
    on_gpu = device == "gpu" or (device is None and torch.cuda.is_available())
    if on_gpu:
        torch.cuda.set_device(local)
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    limit = "torch's default limit" if timeout_s is None else f"up to {timeout_s:g} s"
    log.info(f"fastpolicy: process {me} of {world} waits ({limit}) for the others at {where}")
    timeout = None if timeout_s is None else datetime.timedelta(seconds=timeout_s)  # None: torch's default
    held: dict = {}
    try:
        with _native_stderr_held(held):
            dist.init_process_group("nccl" if on_gpu else "gloo", timeout=timeout)
    except dist.DistError as error:
        log.debug(f"torch's own lines while waiting:\n{held.get('text', '')}")
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "timed out" not in str(error).lower():
            raise RendezvousError(
                f"process {me} of {world} could not join the group at {where} ({first}); "
                f"check MASTER_ADDR and MASTER_PORT"
            ) from None
        waited = "torch's default wait" if timeout_s is None else f"{timeout_s:g} s"
        raise RendezvousTimeout(
            f"process {me} of {world}: the other processes did not join at {where} within {waited} "
            f"({first}); start every process (torchrun --nproc_per_node/--nnodes) or wait longer with "
            f"--rendezvous-timeout SECONDS"
        ) from None
    except BaseException:
        if held.get("text"):
            os.write(2, held["text"].encode())  # torch's lines are not lost on any other failure
        raise
    return True


@contextlib.contextmanager
def _native_stderr_held(held: dict):
    """Hold what C++ writes to file descriptor 2 during the block (c10d prints each failed
    connection try with a 40-frame stack trace): written back unchanged if the block succeeds,
    kept in ``held["text"]`` (shown by ``-v``) if it raises. Where fd 2 cannot be redirected,
    nothing is held."""
    with tempfile.TemporaryFile() as spool:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield
            return
        os.dup2(spool.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            spool.seek(0)
            data = spool.read()
            if failed:
                held["text"] = data.decode(errors="replace")
            elif data:
                os.write(2, data)


def rendezvous_timeout(timeout_s: float | None) -> float | None:
    """``timeout_s``, else ``FASTPOLICY_RENDEZVOUS_TIMEOUT``, else None (torch's default);
    ValueError naming the value unless it is a number > 0."""
    source = "--rendezvous-timeout"
    if timeout_s is None:
        text = os.environ.get(RENDEZVOUS_TIMEOUT_ENV, "").strip()
        if not text:
            return None
        source = f"environment variable {RENDEZVOUS_TIMEOUT_ENV}"
        try:
            timeout_s = float(text)
        except ValueError:
            timeout_s = float("nan")
    if not (timeout_s > 0 and timeout_s != float("inf")):
        raise ValueError(f"{source}={timeout_s!r}: the wait for the other processes must be a number of seconds > 0")
    return float(timeout_s)


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
    "RENDEZVOUS_TIMEOUT_ENV",
    "RendezvousError",
    "RendezvousTimeout",
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
    "rendezvous_timeout",
    "shutdown",
    "world_size",
]
