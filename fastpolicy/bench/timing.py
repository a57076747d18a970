"""Timing helpers: warm-up excluded, repeated runs, medians."""

from __future__ import annotations

import statistics
import time


def endless(loader):
    """Batches of ``loader`` over as many epochs as asked for."""
    while True:
        yield from loader


def median_rate(make_iter, items_per_batch: int, batches: int, warmup: int, repeats: int, sync=None) -> float:
    """Median items/s over ``repeats`` back-to-back runs of ``batches`` batches of one
    ``make_iter()``, after ``warmup`` untimed batches; ``sync()`` (e.g. a CUDA synchronize)
    closes each timing."""
    sync = sync or (lambda: None)
    rates = []
    iterator = make_iter()
    for _ in range(warmup):
        next(iterator)
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        sync()
        rates.append(batches * items_per_batch / (time.perf_counter() - start))
    return statistics.median(rates)


def median_seconds(run, sync, warmup: int, repeats: int) -> float:
    """Median wall seconds of ``run()`` (``sync()`` after each) over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


__all__ = ["endless", "median_rate", "median_seconds"]
