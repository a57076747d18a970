"""Whether an enlarged batch fits: its buffers against the memory free where they live, before
anything is built (a batch too large for a memory limit otherwise fails after set-up, with an
allocation traceback and no figure)."""

from __future__ import annotations

import os

import numpy as np

IN_FLIGHT = 2
"""Batches held besides the prefetched ones: the one being augmented and the one being trained on."""


def batch_bytes(rows: int, height: int, width: int, channels: int, output_dtype: str) -> int:
    """Bytes of one enlarged batch's buffers: the decoded copies and the augmented ones (uint8)
    and the output (``output_dtype``), ``rows`` = M·N of ``channels``×``height``×``width``."""
    pixels = int(rows) * int(height) * int(width) * int(channels)
    size = _ITEMSIZE.get(str(output_dtype))
    return pixels * (2 + (np.dtype(output_dtype).itemsize if size is None else size))


_ITEMSIZE = {"bfloat16": 2, "float": 4}
"""Bytes per element of the output dtypes NumPy does not name (the rest: ``np.dtype``)."""


def _cgroup_free(root: str = "/sys/fs/cgroup") -> int | None:
    """Bytes this process's cgroup (v2) may still take: ``memory.max − memory.current`` plus the
    page cache it could drop (``inactive_file`` of ``memory.stat``: a dataset read once sits
    there); None without a limit."""
    try:
        with open(os.path.join(root, "memory.max")) as handle:
            limit = handle.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(root, "memory.current")) as handle:
            used = int(handle.read().strip())
        reclaimable = 0
        with open(os.path.join(root, "memory.stat")) as handle:
            for line in handle:
                if line.startswith("inactive_file "):
                    reclaimable = int(line.split()[1])
        return int(limit) - used + reclaimable
    except (OSError, ValueError, IndexError):
        return None


def free_bytes(device: str) -> int | None:
    """Bytes free where a batch on ``device`` lives: the GPU's free memory; the host's available
    memory (``MemAvailable``), lowered to a cgroup limit's room. None where it cannot be told."""
    if device == "gpu":
        import torch

        return int(torch.cuda.mem_get_info()[0]) if torch.cuda.is_available() else None
    return _host_free()[0]


def _host_free() -> tuple[int | None, str]:
    """``(bytes, what bounds them)``: ``MemAvailable``, or a cgroup limit's room where lower."""
    free = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        free = None
    room = _cgroup_free()
    if room is not None and (free is None or room < free):
        return room, "this process's cgroup limit"
    return free, "this machine"


def check_fits(rows: int, height: int, width: int, channels: int, output_dtype: str, device: str, prefetch: int):
    """ValueError, with the figures, when ``prefetch`` + :data:`IN_FLIGHT` enlarged batches
    cannot fit in the memory free on ``device`` (:func:`free_bytes`); nothing where it cannot be told.
    The model, its gradients and the decoder's own buffers come on top: passing is no promise."""
    free = free_bytes(device)
    need = batch_bytes(rows, height, width, channels, output_dtype) * (int(prefetch) + IN_FLIGHT)
    if free is not None and need > free:
        where = "the GPU" if device == "gpu" else _host_free()[1]
        raise ValueError(
            f"an enlarged batch of M·N = {rows} rows of {channels}×{height}×{width} ({output_dtype} output) needs "
            f"about {need / 2**30:.2f} GiB for {int(prefetch) + IN_FLIGHT} batches in flight; {where} has "
            f"{max(free, 0) / 2**30:.2f} GiB free: lower batch_size, M or image_size (--batch, --M, --image-size)"
        )


__all__ = ["IN_FLIGHT", "batch_bytes", "check_fits", "free_bytes"]
