"""Host packing of a batch's op slots for the kernels (issue 29 item 4): milliseconds per batch.

Times :func:`fastpolicy.backends.pack.pack` with the kernels' slot fields
(:data:`~fastpolicy.backends.kernel_pack.KERNEL_SLOTS`) on the stage cases of
:func:`fastpolicy.bench.stage.cases` (one op family per sample, M = 8 random adversarial
policies, the standard policies) for N images of S² pixels, the packed tables memoized as
in a run (warm-up excluded; median of ``--repeats``). This is what sits on the timed path
of every step before the kernels run.

    nice -n 10 python benchmarks/pack_time.py                    # N = 2048 at 224²
    nice -n 10 python benchmarks/pack_time.py --json /tmp/p.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from fastpolicy.backends.kernel_pack import KERNEL_SLOTS
from fastpolicy.backends.pack import pack
from fastpolicy.bench.stage import cases
from fastpolicy.bench.timing import median_seconds


def pack_ms(params, size: int, warmup: int, repeats: int) -> float:
    """Median milliseconds of one :func:`pack` of ``params`` for size² images."""
    in_rows = np.arange(params.n, dtype=np.int32)

    def run():
        pack(params, size, size, KERNEL_SLOTS, in_rows=in_rows)

    return 1e3 * median_seconds(run, lambda: None, warmup, repeats)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048, help="images per batch")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", default=None, help="also write {case: ms} here")
    args = parser.parse_args(argv)
    result = {}
    for name, params in cases(args.n, np.random.default_rng(0)).items():
        result[name] = pack_ms(params, args.size, args.warmup, args.repeats)
        print(f"{name:22s} {result[name]:7.3f} ms per batch of {args.n}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
