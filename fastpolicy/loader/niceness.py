"""DALI's threads yield the CPU to the training thread: their scheduling niceness.

A source pipeline's threads (DALI names them ``[DALI]…``: its thread pool and executors)
decode ahead into DALI's prefetch queue while the training thread samples, runs the policy
stage, assembles the batch and trains. Where cores are fewer than runnable threads (a CPU
loader on two cores: two DALI threads, the training thread, the stage's threads), the
scheduler slices them evenly, so every host step the training thread takes is preempted by
decoding that is not yet needed. Raised niceness makes DALI's threads run on what the others
leave: the host steps and the stage run first, and decoding ahead still fills every idle
moment (the source's total work is the same; only who waits changes).

Linux only: there a thread's niceness is its own (``setpriority`` on a thread id); elsewhere
this does nothing. Raising niceness needs no privilege, and it is never lowered here.
"""

from __future__ import annotations

import os
import threading
import time

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


def yield_new_dali_threads(before: set[int], nice: int | None, settle: float = SETTLE) -> list[int]:
    """Raise to ``nice`` (0–19; None: leave them) the niceness of the DALI threads started
    since ``before`` (:func:`thread_ids`) by this thread; returns their ids. A thread names
    itself once running, so one still bearing this thread's name is waited for, up to
    ``settle`` seconds. A thread already nicer keeps its own; one that ended is passed over."""
    if nice is None or not before:  # no /proc listing: not Linux
        return []
    inherited, deadline = _name(threading.get_native_id()), time.monotonic() + settle
    waiting, changed = sorted(thread_ids() - before), []
    while waiting:
        unnamed = []
        for tid in waiting:
            try:
                name = _name(tid)
                if name.startswith(PREFIX):
                    os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
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


__all__ = ["thread_ids", "yield_new_dali_threads"]
