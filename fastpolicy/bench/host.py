"""The loader's host time per batch: what the training thread spends besides DALI and the stage.

Over the generated photo tree (decode, random-resized-crop to 224², M copies), the loader
runs synchronously (``prefetch=0``, so every part is on the timed thread) with a standard
policy on every copy. Its per-part timers (:attr:`PolicyDALILoader.timings`) and the
stage's host timer (:attr:`~fastpolicy.backends.stage.PolicyStage.host_seconds`) split the
wall time per batch into DALI's run (``source``), the stage's own compute (``stage`` less
its host part) and the rest — the host time: assembling the one buffer, sampling,
packing, uploads and the batch record.

Two more figures show whether the parts overlap and what caps the loader: ``source_alone``,
DALI's run per batch when nothing else runs (its pipeline called back to back), beside
``source``, the time the loader waits for it — DALI's executor makes batch k+1 while the
stage augments batch k (its prefetch queue holds two batches), so the wait is shorter than
the run by what the overlap hides; and ``busy_cores``, the process's CPU seconds per wall
second (≈ the machine's free cores: compute-bound, overlap can win nothing more).

``host_alone_ms`` is the regime check, one pass of ``batches`` steps averaged: the sampling
and the stage's packing and upload with DALI idle — on one source batch made beforehand,
nothing decoding beside them — to set beside the same parts in the loader; ``batch`` there
times the batch record's policy-id tensor only, and ``total`` sums the three (not the loader's
assemble step nor its untimed rest, so it is not comparable to the whole host time);
``sample`` is the policy set's sampling called step after step as the loader calls it (it
draws :data:`~fastpolicy.loader.policy_set.AHEAD` steps at a time: per step, one draw of
AHEAD steps spread over the steps timed); ``sample_again``, one step drawn on its own
(:meth:`~fastpolicy.loader.policy_set.PolicySet.draw`) right after.
"""

from __future__ import annotations

import resource
import statistics
import time

import torch

from ..loader import Pipeline, PolicyDALILoader
from ..policies import resolve


def run_host(
    root: str,
    N: int,
    M: int,
    size: int,
    device: str,
    threads: int,
    batches: int,
    warmup: int,
    repeats: int,
    policy: str = "autoaugment",
    priority: str | None = Pipeline.dali_priority,
) -> list[dict]:
    """Rows ``{"scenario": "host", ..., "host_ms_per_batch", "parts_ms"}``: medians over ``repeats``."""
    loader = PolicyDALILoader(
        root,
        batch_size=N,
        M=M,
        image_size=size,
        device=device,
        policies=resolve(policy),
        pipeline=Pipeline(num_threads=threads, prefetch=0, dali_priority=priority),
    )
    iterator = _endless(loader)
    for _ in range(warmup):
        next(iterator)
    stage = loader._policy_stage()
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    runs = []
    for _ in range(repeats):
        sync()
        loader.timings.reset()
        stage_host = stage.host_seconds
        cpu = _cpu_seconds()
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        sync()
        wall = time.perf_counter() - start
        busy = (_cpu_seconds() - cpu) / wall
        parts = dict(loader.timings.seconds)
        packing = stage.host_seconds - stage_host
        compute = parts.get("stage", 0.0) - packing
        host = wall - parts.get("source", 0.0) - compute
        runs.append(
            {
                "host": host / batches,
                "wall": wall / batches,
                "source": parts.get("source", 0.0) / batches,
                "stage_compute": compute / batches,
                "pack_and_upload": packing / batches,
                "assemble": parts.get("assemble", 0.0) / batches,
                "sample": parts.get("sample", 0.0) / batches,
                "batch": parts.get("batch", 0.0) / batches,
                "busy_cores": busy,
                "source_alone": _source_alone(loader, batches, sync),
            }
        )
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    busy_cores = median.pop("busy_cores")
    row = {
        "scenario": "host",
        "case": f"{policy}, {size}²",
        "M": M,
        "device": device,
        "contender": f"fastpolicy PolicyDALILoader ({loader.backend} stage)",
        "images_per_s": M * N / median["host"],
        "host_ms_per_batch": 1000 * median["host"],
        "busy_cores": busy_cores,
        "parts_ms": {key: 1000 * value for key, value in median.items() if key != "host"},
        "host_alone_ms": _host_alone(loader, batches, sync),
    }
    print(
        f"  host     M={M}  loader host time {row['host_ms_per_batch']:.2f} ms/batch "
        + ", ".join(f"{k} {v:.2f}" for k, v in row["parts_ms"].items())
        + f"; {busy_cores:.2f} cores busy; with DALI idle {row['host_alone_ms']['total']:.2f} ms",
        flush=True,
    )
    return [row]


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, all its threads (DALI's, the stage's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _source_alone(loader, batches: int, sync) -> float:
    """Seconds per batch of the loader's DALI pipeline run back to back (nothing between runs)."""
    loader._source.run()  # the batch made ahead while the stage ran is not a run of its own
    sync()
    start = time.perf_counter()
    for _ in range(batches):
        loader._source.run()
    sync()
    return (time.perf_counter() - start) / batches


def _host_alone(loader, batches: int, sync) -> dict[str, float]:
    """Milliseconds per batch of host steps with DALI idle (see the module docstring): the
    sampling, the stage's packing and upload, the batch record's policy ids, their sum, and the
    sampling repeated at once."""
    source, _, _ = loader._source.run()
    sync()
    time.sleep(0.5)  # DALI's executor fills its queue ahead, then idles
    stage = loader._policy_stage()
    n = min(loader.batch_size, source.shape[0])
    sampled = again = recorded = 0.0
    packed = stage.host_seconds
    for step in range(batches):
        start = time.perf_counter()
        params, _ = loader.policy_set.sample(n, 0, step)
        sampled += time.perf_counter() - start
        start = time.perf_counter()
        loader.policy_set.draw(n, 0, step + batches)
        again += time.perf_counter() - start
        stage.apply(source[:n], params, loader.output_spec)
        sync()
        start = time.perf_counter()
        loader._policy_ids(n, source.device)
        recorded += time.perf_counter() - start
    parts = {"sample": sampled, "pack_and_upload": stage.host_seconds - packed, "batch": recorded}
    return {key: 1000 * value / batches for key, value in parts.items()} | {
        "total": 1000 * sum(parts.values()) / batches,
        "sample_again": 1000 * again / batches,
    }


def _endless(loader):
    while True:
        yield from loader


__all__ = ["run_host"]
