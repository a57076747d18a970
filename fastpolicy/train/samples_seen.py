"""A debug record of the samples every process trained on, to check sharding across ranks and nodes.

With the environment variable ``FASTPOLICY_SAMPLES_SEEN=DIR`` set, every process appends one
line per training batch to ``DIR/rank<R>.txt`` (``R``: its global rank):
``<epoch> <step> <index> <index> …`` — the batch's dataset indices (``batch.indices``: for
shards the sample's position in shard order, for folders the file's, for arrays the row's).
Unset (the default), nothing is written and the cost is one dictionary lookup per batch. The
two-node test (``tests/test_two_nodes.py``) reads these files to check that the ranks saw
disjoint samples covering each epoch.
"""

from __future__ import annotations

import os

from . import distributed

ENV = "FASTPOLICY_SAMPLES_SEEN"
"""The environment variable naming the folder of the per-rank files."""


def path(folder: str, rank: int) -> str:
    """The file rank ``rank`` writes in ``folder``."""
    return os.path.join(folder, f"rank{rank}.txt")


def record(epoch: int, batch) -> None:
    """Append batch ``batch``'s line (epoch, ``batch.step``, ``batch.indices``) to this rank's
    file, if :data:`ENV` names a folder (made if missing)."""
    folder = os.environ.get(ENV)
    if not folder or batch.indices is None:
        return
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"{ENV}={folder}: names a file; it must name a folder (made if missing)")
    os.makedirs(folder, exist_ok=True)
    indices = " ".join(str(int(i)) for i in batch.indices)
    with open(path(folder, distributed.rank()), "a") as out:
        out.write(f"{epoch} {batch.step} {indices}\n")


def read(folder: str, rank: int) -> list[tuple[int, int, list[int]]]:
    """``(epoch, step, indices)`` of every line rank ``rank`` wrote in ``folder``."""
    with open(path(folder, rank)) as lines:
        return [(int(e), int(s), [int(i) for i in rest]) for e, s, *rest in (line.split() for line in lines)]


__all__ = ["ENV", "path", "read", "record"]
