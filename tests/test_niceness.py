"""DALI's threads run at the loader's ``Pipeline.dali_nice`` (Linux), and only DALI's."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("nvidia.dali")
from fastpolicy.loader import Pipeline, PolicyDALILoader
from fastpolicy.loader.niceness import TASKS, thread_ids, yield_new_dali_threads

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def _name(tid: int) -> str:
    with open(f"{TASKS}/{tid}/comm") as comm:
        return comm.read().strip()


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def _dali_threads_of(pipeline: Pipeline) -> tuple[dict[int, int], PolicyDALILoader]:
    """Thread id → niceness of the DALI threads a new array loader starts, and the loader
    (kept alive: its threads end with it)."""
    before = thread_ids()
    images = np.zeros((8, 8, 8, 3), np.uint8)
    loader = PolicyDALILoader.from_arrays(images, np.arange(8), 4, M=2, device="cpu", pipeline=pipeline)
    threads = {tid: _nice(tid) for tid in thread_ids() - before if _name(tid).startswith("[DALI]")}
    assert threads, "the loader's build started no DALI thread"
    return threads, loader


@pytest.mark.parametrize("nice", [19, 5])
def test_dali_threads_take_the_setting(nice):
    threads, loader = _dali_threads_of(Pipeline(dali_nice=nice, num_threads=2))
    assert set(threads.values()) == {max(nice, os.getpriority(os.PRIO_PROCESS, 0))}
    next(iter(loader))  # still decodes


def test_default_is_19_and_none_keeps_the_process_niceness():
    assert Pipeline().dali_nice == 19
    threads, _ = _dali_threads_of(Pipeline(dali_nice=None))
    assert set(threads.values()) == {os.getpriority(os.PRIO_PROCESS, 0)}


def test_only_new_dali_threads_change_and_none_is_lowered():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    before = thread_ids()
    other.start()
    try:
        threads, _ = _dali_threads_of(Pipeline(dali_nice=19))
        started = thread_ids() - before
        changed = yield_new_dali_threads(before, 5)  # already 19: kept, not lowered
        assert set(changed) == set(threads) and all(_nice(tid) == 19 for tid in threads)
        bystanders = started - set(threads)
        assert bystanders and all(_nice(tid) == os.getpriority(os.PRIO_PROCESS, 0) for tid in bystanders)
        assert yield_new_dali_threads(before, None) == []
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
        assert yield_new_dali_threads(before, 7) == [thread.native_id]
        assert _nice(thread.native_id) == 7
    finally:
        stop.set()
        thread.join()
