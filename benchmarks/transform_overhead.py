"""Per-call overhead of ``PolicyAugment`` on one 224×224 RGB image, beside torchvision.

    python benchmarks/transform_overhead.py            # this checkout
    python benchmarks/transform_overhead.py OTHER_TREE # another checkout (before/after)

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

if len(sys.argv) > 1:
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
    print(f"# {fastpolicy.__file__}")
    print(f"skipped-ops call, PIL      {per_call(lambda: skipped(pil)):9.1f} µs")
    print(f"skipped-ops call, tensor   {per_call(lambda: skipped(tensor)):9.1f} µs")
    print(f"sampling one image (AA)    {per_call(sample_one):9.1f} µs")
    print(f"AutoAugment call, PIL      {per_call(lambda: aa(pil), n=100):9.1f} µs")
    print(f"AutoAugment call, tensor   {per_call(lambda: aa(tensor), n=100):9.1f} µs")
    print(f"torchvision AA, PIL        {per_call(lambda: tv(pil), n=100):9.1f} µs")
    print(f"torchvision AA, tensor     {per_call(lambda: tv(tensor), n=100):9.1f} µs")


if __name__ == "__main__":
    main()
