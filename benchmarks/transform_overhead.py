"""Per-call overhead of ``PolicyAugment`` on one 224×224 RGB image, beside torchvision.

    python benchmarks/transform_overhead.py            # this checkout
    python benchmarks/transform_overhead.py OTHER_TREE # another checkout (before/after)
    python benchmarks/transform_overhead.py --before OTHER_TREE --rounds 3 \
        --json benchmarks/results/transform_overhead_cpu_DATE.json   # interleaved, recorded

The overhead is the time of a call whose every op slot is skipped (a policy of probability
0: sampling, packing, dispatch and conversions, no op work); ``sampling`` is drawing one
image's ops alone. Full calls of AutoAugment are given beside torchvision's. One thread;
each figure is the median of 7 repeats of 400 calls (100 for full calls), in µs.
Run the trees interleaved on a busy machine: the figures move with the load.
"""

from __future__ import annotations

import statistics
import sys
import time

if len(sys.argv) > 1 and not sys.argv[1].startswith("--"):
    sys.path.insert(0, sys.argv[1])

import numpy as np
import PIL.Image
import torch
from torchvision.transforms import v2

import fastpolicy
from fastpolicy import Policy
from fastpolicy.transforms import PolicyAugment


def per_call(fn, n: int = 400, repeats: int = 7) -> float:
    """Median µs per call of ``fn`` over ``repeats`` runs of ``n`` calls (after a warm-up)."""
    for _ in range(50):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times) * 1e6


def main() -> None:
    torch.set_num_threads(1)
    pixels = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    pil = PIL.Image.fromarray(pixels)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    skipped = PolicyAugment(Policy([[("Invert", 0, 0.0), ("Equalize", 0, 0.0)]]))
    aa = PolicyAugment("autoaugment")
    generator = np.random.default_rng(1)
    sample_one = (lambda: aa.draw(1)) if hasattr(aa, "draw") else (lambda: aa.sample(1, generator))
    tv = v2.AutoAugment()
    ra, tv_ra = PolicyAugment("randaugment"), v2.RandAugment()
    ta, tv_ta = PolicyAugment("trivialaugment_wide"), v2.TrivialAugmentWide()
    print(f"# {fastpolicy.__file__}")
    print(f"skipped-ops call, PIL      {per_call(lambda: skipped(pil)):9.1f} µs")
    print(f"skipped-ops call, tensor   {per_call(lambda: skipped(tensor)):9.1f} µs")
    print(f"sampling one image (AA)    {per_call(sample_one):9.1f} µs")
    print(f"AutoAugment call, PIL      {per_call(lambda: aa(pil), n=100):9.1f} µs")
    print(f"AutoAugment call, tensor   {per_call(lambda: aa(tensor), n=100):9.1f} µs")
    print(f"torchvision AA, PIL        {per_call(lambda: tv(pil), n=100):9.1f} µs")
    print(f"torchvision AA, tensor     {per_call(lambda: tv(tensor), n=100):9.1f} µs")
    for name, ours, theirs in (("RA", ra, tv_ra), ("TAW", ta, tv_ta)):
        for kind, image in (("PIL", pil), ("tensor", tensor)):
            print(f"{name} call, {kind:<6}          {per_call(lambda o=ours, i=image: o(i), n=100):9.1f} µs")
            print(f"torchvision {name}, {kind:<6}   {per_call(lambda t=theirs, i=image: t(i), n=100):9.1f} µs")


def record(before: str, rounds: int, path: str) -> None:
    """Run ``before``'s tree and this one alternately ``rounds`` times each (subprocesses, so a
    changing load falls on both) and write every figure to ``path`` (a new file)."""
    import os
    import re
    import subprocess

    from fastpolicy.bench import record as bench_record

    if os.path.lexists(path):
        raise SystemExit(f"{path} exists; a record is never overwritten: name another --json")
    here = os.path.dirname(os.path.abspath(__file__))
    commits = {}
    for code, tree in (("before", before), ("after", os.path.dirname(here))):
        commits[code] = subprocess.run(
            ["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    rows = []
    load = bench_record.load_average()
    for run in range(rounds):
        for code, argument in (("before", [before]), ("after", [])):
            output = subprocess.run(
                [sys.executable, os.path.abspath(__file__), *argument], capture_output=True, text=True, check=True
            ).stdout
            for line in output.splitlines():
                match = re.match(r"(.+?)\s+([0-9.]+) µs$", line)
                if match:
                    measure = " ".join(match.group(1).split())
                    rows.append({"code": f"{commits[code]} ({code})", "run": run, "measure": measure,
                                 "microseconds": float(match.group(2))})  # fmt: skip
            print(f"round {run}: {code} done", flush=True)
    bench_record.write(
        "transform_overhead",
        {"image": "224x224 RGB", "threads": 1, "repeats": "median of 7 × 400 calls (100 for full calls)"},
        rows,
        path,
        f"{rounds} rounds, before and after alternately in subprocesses; before = {before} at {commits['before']}",
        modules=("torchvision", "PIL"),
        load_at_start=load,
        extra={"commits": commits},
    )


if __name__ == "__main__":
    if "--json" in sys.argv:
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("--before", required=True, help="another checkout to run alternately")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--json", required=True, help="the record to write (a new file)")
        options = parser.parse_args()
        record(options.before, options.rounds, options.json)
    else:
        main()
