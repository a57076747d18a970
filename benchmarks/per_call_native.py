"""Would the native stage make PolicyAugment's per-call path twice torchvision's? (issue 39 item 3)

    python benchmarks/per_call_native.py --json benchmarks/results/per_call_native_cpu_DATE.json

One core (``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``, as in a DataLoader worker),
the policy alone on one 224² RGB image per call, cycling over ``--images`` real-photo crops;
per standard policy (AutoAugment ImageNet, RandAugment, TrivialAugmentWide) and input kind (PIL
image, uint8 CHW tensor), microseconds per call of:

* ``torchvision`` — torchvision v2's own policy class;
* ``pil_path`` — ``PolicyAugment`` as it ships (the ``pil`` stage's forms);
* ``native_path`` — ``PolicyAugment.sample``'s parameters (the one sampler: the same law, drawn
  from the same generator) applied by the native stage instead: the image to a uint8
  [1, H, W, C] array, ``KernelPolicyStage.native().apply``, back to a PIL image or a CHW
  tensor — the per-call path issue 39 asks for, as a prototype.

Before timing, each contender runs ``--warmup`` passes over the images, so the native stage's
op table holds the policy's values (TrivialAugmentWide's 31 bins of 14 ops, both signs, take
about a thousand draws to meet). Contenders
run interleaved (``--rounds`` rounds, the order rotated each round); medians of the rounds.
Pre-registered (:data:`GOAL`, :data:`IDLE`): the goal is ≥ 2× torchvision; the run is
valid only if the 1-minute load average at the start is below :data:`IDLE`, else "inconclusive".
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before the native stage's OpenMP runtime loads

import argparse
import statistics
import time

import numpy as np
import PIL.Image
import torch
from torchvision.transforms import v2

from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.bench import record
from fastpolicy.data.photo_tree import photo_batch
from fastpolicy.transforms import PolicyAugment

GOAL = 2.0
"""The issue's target: calls per second against torchvision's, per policy and input kind."""
IDLE = 0.5
"""Largest 1-minute load average at the start for a valid (idle) run."""

POLICIES = {
    "autoaugment": v2.AutoAugment,
    "randaugment": v2.RandAugment,
    "trivialaugment_wide": v2.TrivialAugmentWide,
}


def _native(augment: PolicyAugment, stage: KernelPolicyStage, tensor: bool):
    """One call of the prototype: ``augment``'s parameters for one image (its one sampler, bins
    included, so the stage's op table finds every value it has seen), applied by ``stage``."""

    def call(image):
        params = augment.sample(1, augment._rng())
        if not (params.op >= 0).any():
            return image.clone() if tensor else image
        pixels = image.permute(1, 2, 0).contiguous().numpy()[None] if tensor else np.asarray(image)[None]
        out = stage.apply(pixels, params, fill=augment.default_fill)
        return torch.from_numpy(out[0]).permute(2, 0, 1).contiguous() if tensor else PIL.Image.fromarray(out[0])

    return call


def measure(images: np.ndarray, calls: int, rounds: int, warmup: int = 1) -> dict:
    """µs per call: {policy: {input kind: {contender: median over rounds}}}."""
    torch.set_num_threads(1)
    stage = KernelPolicyStage.native()
    inputs = {
        "pil": [PIL.Image.fromarray(image) for image in images],
        "tensor": [torch.from_numpy(image).permute(2, 0, 1).contiguous() for image in images],
    }
    out: dict = {}
    for policy, peer in POLICIES.items():
        for kind, items in inputs.items():
            augment = PolicyAugment(policy)
            contenders = {
                "torchvision": peer(),
                "pil_path": augment,
                "native_path": _native(augment, stage, kind == "tensor"),
            }
            times: dict[str, list[float]] = {name: [] for name in contenders}
            names = list(contenders)
            for name in names:  # warm-up: builds, caches, the native stage's op table
                for _ in range(warmup):
                    for item in items:
                        contenders[name](item)
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    run = contenders[name]
                    start = time.perf_counter()
                    for i in range(calls):
                        run(items[i % len(items)])
                    times[name].append(1e6 * (time.perf_counter() - start) / calls)
            out.setdefault(policy, {})[kind] = {name: statistics.median(values) for name, values in times.items()}
    return out


def verdict(us: dict, load: float | None) -> dict:
    """The pre-registered reading: each path's speed-up over torchvision, and whether the goal is met."""
    ratios = {
        policy: {
            kind: {path: row["torchvision"] / row[path] for path in ("pil_path", "native_path")}
            for kind, row in kinds.items()
        }
        for policy, kinds in us.items()
    }
    if load is None or load >= IDLE:
        reading = f"inconclusive: the machine was not idle (load {load}; the gate is {IDLE})"
    else:
        best = min(max(r.values()) for kinds in ratios.values() for r in kinds.values())
        reading = (
            "met"
            if best >= GOAL
            else f"not met: the better path's worst case is {best:.2f}× torchvision (goal {GOAL}×)"
        )
    return {"speedup_over_torchvision": ratios, "goal": GOAL, "verdict": reading}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=150, help="passes over the images before timing")
    parser.add_argument("--json", default=None, help="write the record here (a new file)")
    args = parser.parse_args(argv)
    average = record.start(args.json)
    load = average[0] if average else None
    us = measure(photo_batch(args.images, args.size, args.size), args.calls, args.rounds, args.warmup)
    result = verdict(us, load)
    for policy, kinds in us.items():
        for kind, row in kinds.items():
            ratio = result["speedup_over_torchvision"][policy][kind]
            print(
                f"{policy:<20} {kind:<6} "
                + "  ".join(f"{name} {value:6.0f} µs" for name, value in row.items())
                + f"   PIL path {ratio['pil_path']:.2f}×, native path {ratio['native_path']:.2f}× torchvision"
            )
    print(result["verdict"])
    if args.json:
        settings = {
            "images": args.images,
            "size": args.size,
            "calls": args.calls,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "threads": 1,
        }
        record.write(
            "per_call_native",
            settings,
            {"us_per_call": us} | result,
            args.json,
            "one core; the three contenders interleaved in one process, the policy alone, one image per call",
            modules=("PIL", "torchvision"),
            load_at_start=average,
        )
    return result


if __name__ == "__main__":
    main()
