"""DALI's threads run under the loader's ``Pipeline.dali_priority`` (Linux), and only DALI's."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("nvidia.dali")
from fastpolicy.loader import Pipeline, PolicyDALILoader
from fastpolicy.loader.dali_priority import TASKS, apply_dali_priority, resolve_priority, thread_ids

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread scheduling is Linux's")


def _name(tid: int) -> str:
    with open(f"{TASKS}/{tid}/comm") as comm:
        return comm.read().strip()


def _policy(tid: int) -> int:
    return os.sched_getscheduler(tid)


def _dali_threads_of(pipeline: Pipeline) -> tuple[dict[int, int], PolicyDALILoader]:
    """Thread id → scheduling policy of the DALI threads a new array loader starts, and the
    loader (kept alive: its threads end with it)."""
    before = thread_ids()
    images = np.zeros((8, 8, 8, 3), np.uint8)
    loader = PolicyDALILoader.from_arrays(images, np.arange(8), 4, M=2, device="cpu", pipeline=pipeline)
    mine = _name(threading.get_native_id())
    for _ in range(1000):  # threads name themselves once running ("normal" does not wait for it)
        if all(_name(tid) != mine for tid in thread_ids() - before):
            break
        time.sleep(0.001)
    threads = {tid: _policy(tid) for tid in thread_ids() - before if _name(tid).startswith("[DALI]")}
    assert threads, "the loader's build started no DALI thread"
    return threads, loader


def test_by_default_a_cpu_loaders_dali_threads_are_idle_and_it_still_runs():
    assert Pipeline().dali_priority is None
    assert [resolve_priority(None, device) for device in ("cpu", "gpu")] == ["idle", "normal"]
    before = thread_ids()
    threads, loader = _dali_threads_of(Pipeline(num_threads=2))
    assert set(threads.values()) == {os.SCHED_IDLE}
    assert len(next(iter(loader)).labels) == 8  # N·M rows, decoded by idle threads
    assert _policy(threading.get_native_id()) == os.SCHED_OTHER  # the training thread is untouched
    started = {tid for tid in thread_ids() - before if _name(tid).startswith("[DALI]")}
    assert started and all(_policy(tid) == os.SCHED_IDLE for tid in started)  # those started by a run too


def test_normal_keeps_the_process_scheduling():
    threads, _ = _dali_threads_of(Pipeline(dali_priority="normal"))
    assert set(threads.values()) == {os.sched_getscheduler(0)}


def test_only_new_dali_threads_change():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    before = thread_ids()
    other.start()
    try:
        threads, _ = _dali_threads_of(Pipeline(dali_priority="normal"))
        assert apply_dali_priority(before, "normal") == []
        assert sorted(apply_dali_priority(before, "idle", settle=0.01)) == sorted(threads)
        assert all(_policy(tid) == os.SCHED_IDLE for tid in threads)
        assert _policy(other.native_id) == os.SCHED_OTHER
        with pytest.raises(ValueError, match=r"dali_priority must be one of \('idle', 'normal'\) or None, got 'low'"):
            apply_dali_priority(before, "low")
    finally:
        stop.set()
        other.join()


def test_a_thread_named_after_it_starts_is_waited_for():
    """DALI's threads name themselves once running; one still unnamed when the build returns
    is waited for (here: a thread that names itself 20 ms after starting)."""
    stop, before = threading.Event(), thread_ids()

    def late():
        stop.wait(0.02)
        with open(f"{TASKS}/{threading.get_native_id()}/comm", "w") as comm:
            comm.write("[DALI] late")
        stop.wait()

    thread = threading.Thread(target=late, daemon=True)
    thread.start()
    try:
        assert apply_dali_priority(before, "idle") == [thread.native_id]
        assert _policy(thread.native_id) == os.SCHED_IDLE
    finally:
        stop.set()
        thread.join()
