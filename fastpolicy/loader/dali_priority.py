"""DALI's threads yield the CPU to the training thread: their scheduling class.

A source pipeline's threads (DALI names them ``[DALI]…``: its thread pool and executors)
decode ahead into DALI's prefetch queue while the training thread samples, runs the policy
stage, assembles the batch and trains. Where cores are fewer than runnable threads (a CPU
loader on two cores: two DALI threads, the training thread, the stage's threads), the
scheduler preempts the training thread for decoding that is not yet needed, for a time
slice of milliseconds each time. Under ``SCHED_IDLE`` DALI's threads run only on a core
nothing else wants: the host steps and the stage run first, and decoding ahead fills every
idle moment (the source's total work is the same; only who waits changes).

Linux only: there a thread's scheduling class is its own (``sched_setscheduler`` on a thread
id, no privilege needed to lower it); elsewhere this does nothing. The threads DALI's threads
start later (a reader's prefetch thread at the first run, CUDA's or nvJPEG's) inherit the
class. Where other threads of the process spin while they wait (``OMP_WAIT_POLICY=ACTIVE``,
Intel OpenMP's ``KMP_BLOCKTIME``) idle threads get almost no CPU: use ``"normal"`` there.
Linux may also give idle threads' reads the idle I/O class (its BFQ scheduler honours it).
The default (None) is ``"idle"`` for a CPU loader only — the case measured (two cores:
``docs/benchmarks.md``); on a GPU it is ``"normal"`` until a GPU run measures it.
"""

from __future__ import annotations

import os
import threading
import time

PRIORITIES = ("idle", "normal")
"""``Pipeline(dali_priority=...)``: ``SCHED_IDLE`` for DALI's threads, or the process's own
(None: :func:`resolve_priority`)."""
TASKS = "/proc/self/task"
"""One entry per thread of this process (Linux)."""
PREFIX = "[DALI]"
"""How DALI names the threads it starts (``[DALI][TP0]Exec``, ``[DALI] Executor``)."""
SETTLE = 0.2
"""Seconds to wait for the threads a build started to name themselves."""


def thread_ids() -> set[int]:
    """The ids of this process's threads now (empty where ``/proc`` does not list them)."""
    try:
        return {int(name) for name in os.listdir(TASKS)}
    except OSError:
        return set()


def resolve_priority(priority: str | None, device: str) -> str:
    """``priority`` (:data:`PRIORITIES`), or for None the default: ``"idle"`` on the CPU,
    ``"normal"`` on a GPU."""
    if priority is None:
        return "idle" if device == "cpu" else "normal"
    if priority not in PRIORITIES:
        raise ValueError(f"dali_priority must be one of {PRIORITIES} or None, got {priority!r}")
    return priority


def apply_dali_priority(before: set[int], priority: str, settle: float = SETTLE) -> list[int]:
    """With ``priority`` ``"idle"``, move the DALI threads started since ``before``
    (:func:`thread_ids`) by this thread to ``SCHED_IDLE``; returns their ids (``"normal"``:
    none, nothing changes). A thread names itself once running, so one still bearing this
    thread's name is waited for, up to ``settle`` seconds; one that ended is passed over. A
    DALI thread another thread of the process started meanwhile (a loader built beside this
    one) is moved too."""
    if resolve_priority(priority, "cpu") == "normal" or not before or not hasattr(os, "SCHED_IDLE"):  # not Linux
        return []
    inherited, deadline = _name(threading.get_native_id()), time.monotonic() + settle
    waiting, changed = sorted(thread_ids() - before), []
    while waiting:
        unnamed = []
        for tid in waiting:
            try:
                name = _name(tid)
                if name.startswith(PREFIX):
                    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                    changed.append(tid)
                elif name == inherited:
                    unnamed.append(tid)
            except (FileNotFoundError, ProcessLookupError):  # the thread ended
                continue
        if not unnamed or time.monotonic() > deadline:
            break
        waiting = unnamed
        time.sleep(0.001)
    return sorted(changed)


def _name(tid: int) -> str:
    with open(f"{TASKS}/{tid}/comm") as comm:
        return comm.read().rstrip("\n")


__all__ = ["PRIORITIES", "apply_dali_priority", "resolve_priority", "thread_ids"]
