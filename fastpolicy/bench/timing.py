"""Timing helpers: warm-up excluded, repeated runs (back to back or interleaved), medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple


class Paced(NamedTuple):
    """One contender of :func:`interleaved_rates`: ``make()`` gives a fresh iterator of
    batches; ``warmup`` untimed batches, then ``batches`` timed ones."""

    make: Callable[[], Iterator]
    warmup: int
    batches: int


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


def interleaved_rates(contenders: dict[str, Paced], items_per_batch: int, repeats: int, sync=None) -> dict[str, float]:
    """Median items/s per contender, the contenders' runs interleaved: repeat ``r`` times each
    contender once, in an order rotated by ``r``, so that a change of the machine's load
    falls on all of them alike.

    Every run takes a fresh iterator (``contenders``: name → :class:`Paced`), draws its
    ``warmup`` untimed batches, times its ``batches`` batches and closes it before the next
    contender starts — so no contender's workers make batches in the background while
    another one is timed. ``sync()`` closes each timing."""
    if not contenders:
        raise ValueError("interleaved_rates needs at least one contender")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer ≥ 1, got {repeats!r}")
    sync = sync or (lambda: None)
    names = list(contenders)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            make, warmup, batches = contenders[name]
            iterator = make()
            try:
                for _ in range(warmup):
                    next(iterator)
                sync()
                start = time.perf_counter()
                for _ in range(batches):
                    next(iterator)
                sync()
                rates[name].append(batches * items_per_batch / (time.perf_counter() - start))
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()  # a generator: its DataLoader iterator (and workers) goes now
                del iterator
    return {name: statistics.median(values) for name, values in rates.items()}


__all__ = ["Paced", "endless", "interleaved_rates", "median_rate", "median_seconds"]
