"""Rotate on the native stage against PIL per core, beside the stage's own gather bound (issue 39 item 4).

    python benchmarks/rotate_bound.py --json benchmarks/results/rotate_bound_cpu_DATE.json

One core (``OMP_NUM_THREADS=1``, set here before the stage loads), a batch of ``--n`` real-photo
crops of ``--size``² RGB; medians of ``--repeats`` runs, in ns per output pixel:

* ``pil_rotate`` — ``Image.rotate(30°, NEAREST, fillcolor)`` image by image (PIL's
  ``affine_fixed``: 16.16 fixed point, 4-byte pixels);
* ``native_rotate`` — the native stage, every sample Rotate 30° (``apply_warp``);
* ``native_gather`` — the native stage, every sample TranslateX by 0.1 of the side
  (``apply_shift``: each output pixel a copy through precomputed row and column tables): the
  stage's cheapest per-pixel gather, no coordinate arithmetic — what a Rotate could cost at
  best in this stage's row loop;
* ``copy`` — one contiguous copy of the batch (the memory floor).

Pre-registered (:data:`GOAL`, :data:`IDLE`): the goal is Rotate ≥ 1.5× PIL; the run is valid only
if the machine was idle (1-minute load average below :data:`IDLE` at the start), else
"inconclusive". Verdict: "met"; or, when even the gather is below the goal, "out of reach in
this stage: its bare gather is B× PIL"; or "not met: headroom" (the gather is above the goal,
Rotate's coordinate arithmetic costs the difference).
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before the native stage's OpenMP runtime loads

import argparse
import statistics
import time

import numpy as np
import PIL.Image

from fastpolicy import OPS
from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.bench import record
from fastpolicy.data.photo_tree import photo_batch
from fastpolicy.params import PolicyParams

GOAL = 1.5
"""Rotate's target: images per second on one core against PIL's."""
IDLE = 0.5
"""Largest 1-minute load average at the start for a valid (idle) run."""


def _params(op: str, value: float, n: int) -> PolicyParams:
    fields = PolicyParams.skipped_fields(n, 1)
    fields["op"][:] = OPS[op].id
    fields["value"][:] = value
    return PolicyParams(**fields, policy=np.zeros(n))


def _median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n: int, size: int, repeats: int) -> dict:
    images = photo_batch(n, size, size)
    pils = [PIL.Image.fromarray(image) for image in images]
    stage = KernelPolicyStage.native()
    out = np.empty_like(images)
    rotate, gather = _params("Rotate", 30.0, n), _params("TranslateX", 0.1, n)
    runs = {
        "pil_rotate": lambda: [p.rotate(30.0, PIL.Image.NEAREST, fillcolor=(128, 128, 128)) for p in pils],
        "native_rotate": lambda: stage.apply(images, rotate, out=out),
        "native_gather": lambda: stage.apply(images, gather, out=out),
        "copy": lambda: np.copyto(out, images),
    }
    pixels = n * size * size
    return {name: 1e9 * _median_seconds(run, repeats) / pixels for name, run in runs.items()}


def verdict(ns: dict, load: float | None) -> dict:
    """The pre-registered reading of ``ns`` (ns per pixel)."""
    speedup = ns["pil_rotate"] / ns["native_rotate"]
    bound = ns["pil_rotate"] / ns["native_gather"]
    if load is None or load >= IDLE:
        reading = f"inconclusive: the machine was not idle (load {load}; the gate is {IDLE})"
    elif speedup >= GOAL:
        reading = "met"
    elif bound < GOAL:
        reading = f"out of reach in this stage: its bare gather is {bound:.2f}× PIL, below the goal {GOAL}×"
    else:
        reading = f"not met: headroom (the bare gather is {bound:.2f}× PIL; Rotate's arithmetic costs the rest)"
    return {"rotate_over_pil": speedup, "gather_over_pil": bound, "goal": GOAL, "verdict": reading}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", default=None, help="write the record here (a new file)")
    args = parser.parse_args(argv)
    average = record.start(args.json)
    load = average[0] if average else None
    ns = measure(args.n, args.size, args.repeats)
    result = verdict(ns, load)
    for name, value in ns.items():
        print(f"{name:<14} {value:6.3f} ns/pixel")
    print(
        f"Rotate {result['rotate_over_pil']:.2f}× PIL; bare gather {result['gather_over_pil']:.2f}× PIL: "
        + result["verdict"]
    )
    if args.json:
        settings = {"n": args.n, "size": args.size, "repeats": args.repeats, "threads": 1, "angle": 30.0}
        record.write(
            "rotate_bound",
            settings,
            {"ns_per_pixel": ns} | result,
            args.json,
            "one core; PIL and the native stage in the same process, run one after the other",
            modules=("PIL",),
            load_at_start=average,
        )
    return result


if __name__ == "__main__":
    main()
