"""How far can a PIL-image drop-in get past torchvision? Per op, PIL's own operation against the
``pil`` stage's form, and the bound that sets on a call (issue 39 item 3).

    python benchmarks/pil_forms.py --json benchmarks/results/pil_forms_cpu_DATE.json

One core, one 224² RGB real-photo crop per call, cycling over ``--images`` of them. For each op
of TrivialAugmentWide (torchvision's: 14 ops, one per call, uniformly), the values its sampler
draws, in µs per image:

* ``own`` — PIL's own operation (what torchvision's functional ops run on a PIL image);
* ``form`` — the ``pil`` stage's form, what ``PolicyAugment`` runs (a compiled form of
  ``pil_stage.NATIVE_FORMS``, the reference's table over the image's memory, or PIL's own).

Interleaved (``--rounds`` rounds, own and form alternately per op); medians of the rounds.
``bound``, an estimate: TrivialAugmentWide's call at its best — every op whose form did not run
PIL's own operation here (``path``, found at run time) made free, the others as measured, plus
``fixed``, the measured call of a PolicyAugment whose every op is skipped (sampling and
dispatch) — against torchvision's measured call: about the most a PIL-image drop-in that keeps
PIL's own operations where ``path`` says "own" could reach (per-op times come from runs of one op, so the
estimate's error has no known sign). Pre-registered (:data:`GOAL`, :data:`IDLE`): "met" when the
measured call reaches :data:`GOAL`, else whether the bound does ("out of reach on these forms"
or "not excluded"); a run that did not start idle is "inconclusive".
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

from fastpolicy import OPS, Policy
from fastpolicy.backends import pil_pixels, pil_stage
from fastpolicy.bench import record
from fastpolicy.data.photo_tree import photo_batch
from fastpolicy.registry import OP_NAMES
from fastpolicy.transforms import PolicyAugment

GOAL = 2.0
"""Issue 39's per-call target against torchvision."""
IDLE = 0.5
"""Largest 1-minute load average at the start for a valid (idle) run."""


def _draws(augment: PolicyAugment, count: int) -> dict[str, list[float]]:
    """Op name → the values ``augment``'s sampler draws for it in ``count`` one-image draws."""
    params = augment.sample(count, np.random.default_rng(0))
    out: dict[str, list[float]] = {}
    for op, value in zip(params.op[:, 0].tolist(), params.value[:, 0].tolist()):
        out.setdefault("Identity" if op < 0 else OP_NAMES[op], []).append(value)
    return out


def _per_image(fn, images, values, rounds_calls: int) -> float:
    """µs per call of ``fn(image, value)`` over ``rounds_calls`` calls cycling images and values."""
    start = time.perf_counter()
    for i in range(rounds_calls):
        fn(images[i % len(images)], values[i % len(values)])
    return 1e6 * (time.perf_counter() - start) / rounds_calls


def measure(images: list, calls: int, rounds: int) -> dict:
    torch.set_num_threads(1)
    augment = PolicyAugment("trivialaugment_wide")
    draws = _draws(augment, 20000)
    stage = pil_stage.PilStage()
    rows: dict[str, dict] = {}
    for name, values in sorted(draws.items()):
        if name == "Identity":
            continue
        op_id = OP_NAMES.index(name)

        def form(image, value, op_id=op_id):
            return stage.apply_ops(image, [pil_stage.Op(op_id, value, 0.5, 0.5, 0)])

        def own(image, value, name=name):
            return pil_stage.PIL_OPS[name](image, value, fill=(128, 128, 128), resample=PIL.Image.Resampling.NEAREST)

        contenders = {"own": own, "form": form}
        times: dict[str, list[float]] = {key: [] for key in contenders}
        for fn in contenders.values():
            _per_image(fn, images, values, 2 * len(images))  # warm-up (builds, kept tables)
        for r in range(rounds):
            for key in ("own", "form") if r % 2 == 0 else ("form", "own"):
                times[key].append(_per_image(contenders[key], images, values, calls))
        rows[name] = {key: statistics.median(v) for key, v in times.items()} | {
            "path": _path(name, images[0]),
            "share": len(values) / 20000,
        }
    skipped = PolicyAugment(Policy([[("Invert", 0, 0.0), ("Equalize", 0, 0.0)]]))
    whole = {"torchvision": v2.TrivialAugmentWide(), "ours": augment, "fixed": skipped}
    call_times: dict[str, list[float]] = {key: [] for key in whole}
    for r in range(rounds):  # interleaved, the order rotating
        for key in list(whole)[r % 3 :] + list(whole)[: r % 3]:
            call = whole[key]
            call_times[key].append(_per_image(lambda image, _value, call=call: call(image), images, [0], calls))
    calls_us = {key: statistics.median(values) for key, values in call_times.items()}
    return {"ops": rows, "calls": calls_us, "identity_share": len(draws.get("Identity", [])) / 20000}


def _path(name: str, image: PIL.Image.Image) -> str:
    """What op ``name``'s form ran on ``image`` here: ``"table"`` (the reference's table over the
    image's memory), ``"native"`` (its compiled form) or ``"own"`` (PIL's own operation)."""
    form, spec = pil_stage._BY_ID[OP_NAMES.index(name)], OPS[name]
    if form is pil_stage.PIL_OPS[name]:
        return "own"
    if name in pil_stage.NATIVE_FORMS and pil_stage.NATIVE_FORMS[name](image, 1.0) is not None:
        return "native"
    if spec.kind != "lut":
        return "own"  # a native form that declined: PIL's own ran
    if spec.stats is None:
        return "table" if pil_pixels.lookup(image, np.zeros((3, 256), np.uint8)) is not None else "own"
    return "table" if pil_pixels.histogram(image) is not None else "own"


def verdict(result: dict, load: float | None) -> dict:
    """The bound (see the module docstring) and the pre-registered reading."""
    ops = result["ops"]
    fixed = result["calls"]["fixed"]
    best = fixed + sum(row["share"] * row["own"] for row in ops.values() if row["path"] == "own")
    bound = result["calls"]["torchvision"] / best
    measured = result["calls"]["torchvision"] / result["calls"]["ours"]
    if load is None or load >= IDLE:
        reading = f"inconclusive: the machine was not idle (load {load}; the gate is {IDLE})"
    elif measured >= GOAL:
        reading = f"met: {measured:.2f}× torchvision (goal {GOAL}×)"
    elif bound < GOAL:
        reading = (
            f"not met, and out of reach on these forms by the estimate: with every op that did not run PIL's "
            f"own made free, a call would be {bound:.2f}× torchvision (goal {GOAL}×); measured {measured:.2f}×"
        )
    else:
        reading = (
            f"not met: measured {measured:.2f}× torchvision (goal {GOAL}×); not excluded by the estimate: with "
            f"every op that did not run PIL's own made free a call would be {bound:.2f}×"
        )
    return {"fixed_us": fixed, "bound": bound, "measured": measured, "goal": GOAL, "verdict": reading}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the record here (a new file)")
    args = parser.parse_args(argv)
    average = record.start(args.json)
    images = [PIL.Image.fromarray(a) for a in photo_batch(args.images, args.size, args.size)]
    result = measure(images, args.calls, args.rounds)
    reading = verdict(result, average[0] if average else None)
    for name, row in result["ops"].items():
        kind = row["path"]
        ratio = row["own"] / row["form"]
        print(f"{name:<14} own {row['own']:7.1f} µs   form {row['form']:7.1f} µs   {ratio:5.2f}×  ({kind})")
    calls = result["calls"]
    print(f"calls: torchvision {calls['torchvision']:.1f} µs, ours {calls['ours']:.1f} µs", end="")
    print(f", every op skipped {calls['fixed']:.1f} µs")
    print(reading["verdict"])
    if args.json:
        settings = {"images": args.images, "size": args.size, "calls": args.calls, "rounds": args.rounds, "threads": 1}
        record.write(
            "pil_forms",
            settings,
            result | reading,
            args.json,
            "one core; per op of TrivialAugmentWide, PIL's own operation and the pil stage's form interleaved",
            modules=("PIL", "torchvision"),
            load_at_start=average,
        )
    return reading


if __name__ == "__main__":
    main()
