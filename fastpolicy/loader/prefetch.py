"""Making the next batch while the current one trains: one background thread, on a GPU a
side CUDA stream and an event, and re-augmentation of a batch made under older policies.

:class:`Prefetcher` runs one ``prepare`` call ahead at a time. :meth:`Prefetcher.take`
hands a batch made ahead to the caller's stream (waiting on its event, and marking its
tensors as used there), and when the policies changed since it was made, re-augments
it from its kept source copies with parameters drawn for the same position, so a
prefetching loader yields exactly the synchronous loader's batches.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..params import PolicyParams


@dataclass
class Prepared:
    """One batch before it is handed out.

    Attributes:
        source: uint8 [N, M, H, W, C], the source's copies (kept to re-augment).
        images: the augmented images, (M·n, C, H, W) of the loader's output type.
        labels: int64 [M·n], each row's label; rows: int64 [M·n], each row's policy index (both
            each batch's own, made after the stage: when prefetching, off the training thread).
        indices: int64 [n], dataset indices; n: distinct images.
        params, version: the parameters applied (None: none) and their policy version.
        ready: on a GPU, the event after which a batch made ahead is complete (else None).
        checkpoint: the source's checkpoint before its run (made ahead only), so a resumed
            loader makes this batch again.
    """

    source: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor
    rows: torch.Tensor
    indices: np.ndarray
    n: int
    params: PolicyParams | None
    version: int
    ready: torch.cuda.Event | None = None
    checkpoint: bytes | None = None


class Timings:
    """Host seconds per part of the loader, summed since the last :meth:`reset`: ``source``
    (DALI's run, and on a GPU the device copy of its buffer), ``assemble`` (indices, the
    batch record's labels and policy ids), ``sample``, ``stage`` (the policy stage's call:
    packing, uploads and launches, and on the CPU its compute), ``reaugment``, ``batch`` (the
    :class:`~.batch.Batch` handed out)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.seconds: dict[str, float] = {}

    def add(self, part: str, seconds: float) -> None:
        with self.lock:
            self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    @contextlib.contextmanager
    def timed(self, part: str):
        """Add the seconds the ``with`` body takes to ``part``."""
        started = time.perf_counter()
        yield
        self.add(part, time.perf_counter() - started)


class Prefetcher:
    """One batch made ahead on a background thread (on a side CUDA stream on a GPU).

    Args:
        device: ``"gpu"`` or ``"cpu"``.
        timings: where re-augmentation time is added (``"reaugment"``).
    """

    def __init__(self, device: str, timings: Timings):
        self.device, self.timings = device, timings
        self.pending: Future | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._stream: torch.cuda.Stream | None = None

    def ahead(self, prepare: Callable[[], Prepared]) -> None:
        """Start ``prepare()`` on the thread; on a GPU inside the side stream, with an event
        recorded on it when done."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastpolicy-prefetch")
            if self.device == "gpu":
                self._stream = torch.cuda.Stream()
        self.pending = self._worker.submit(self._on_stream, prepare)

    def _on_stream(self, prepare: Callable[[], Prepared]) -> Prepared:
        if self._stream is None:
            return prepare()
        with torch.cuda.stream(self._stream):
            prepared = prepare()
            prepared.ready = torch.cuda.Event()
            prepared.ready.record(self._stream)
        return prepared

    def wait(self) -> Prepared | None:
        """The batch being made ahead, once made, left pending (None: none is)."""
        return None if self.pending is None else self.pending.result()

    def settle(self) -> Prepared | None:
        """Wait for the batch being made ahead, if any, and take it."""
        pending, self.pending = self.pending, None
        return None if pending is None else pending.result()

    def take(self, version: int, reaugment: Callable[[Prepared], None]) -> Prepared | None:
        """The batch made ahead (None: none), usable on the current stream; ``reaugment`` is
        called on it first when it was made under a policy version other than ``version``."""
        prepared = self.settle()
        if prepared is None:
            return None
        if self.device == "gpu":
            current = torch.cuda.current_stream()
            if prepared.ready is not None:
                current.wait_event(prepared.ready)
            for tensor in (prepared.source, prepared.images, prepared.labels, prepared.rows):
                tensor.record_stream(current)
        if prepared.version != version:
            with self.timings.timed("reaugment"):
                reaugment(prepared)
        return prepared

    def close(self) -> None:
        """Stop the thread; a batch being made is finished and stays pending."""
        self.wait()
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None
