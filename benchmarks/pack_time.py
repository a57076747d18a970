"""Host packing of a batch's op slots for the kernels (issue 29 item 4): milliseconds per batch.

Times :func:`fastpolicy.backends.kernel_pack.pack_kernels`, as the kernel stages call it
every step, on the stage cases of :func:`fastpolicy.bench.stage.cases` (one op family per
sample, M = 8 random adversarial policies, the standard policies) for N images of S²
pixels, the op tables memoized as in a run (warm-up excluded; median of ``--repeats``).
``--packer`` picks the compiled packer (``kernels/pack.cpp``), the NumPy one (its fallback
where no C++ compiler is found; the same bytes), or whichever the stages use (``auto``).

    nice -n 10 python benchmarks/pack_time.py                    # N = 2048 at 224²
    nice -n 10 python benchmarks/pack_time.py --packer numpy --n 8
    nice -n 10 python benchmarks/pack_time.py --json /tmp/p.json
"""

from __future__ import annotations

import argparse

import numpy as np

from fastpolicy.backends.kernel_pack import native_packer, pack_kernels
from fastpolicy.bench import record
from fastpolicy.bench.stage import cases
from fastpolicy.bench.timing import median_seconds

PACKERS = {"auto": None, "compiled": True, "numpy": False}
"""``--packer`` → ``pack_kernels(native=...)``."""


def pack_ms(params, size: int, warmup: int, repeats: int, native: bool | None = None) -> float:
    """Median milliseconds of one :func:`pack_kernels` of ``params`` for size² images."""
    in_rows = np.arange(params.n, dtype=np.int32)

    def run():
        pack_kernels(params, size, size, in_rows=in_rows, native=native)

    return 1e3 * median_seconds(run, lambda: None, warmup, repeats)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048, help="images per batch (at least 8: M = 8 policies)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--packer", choices=tuple(PACKERS), default="auto", help="which packer to time")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", default=None, help="also write the record ({case: ms}, machine, command) here")
    args = parser.parse_args(argv)
    load_at_start = record.load_average()
    if args.n < 8:
        parser.error(f"--n must be at least 8 (the adversarial case samples 8 policies), got {args.n}")
    native = PACKERS[args.packer]
    if native is None:
        print(f"packer: {'compiled' if native_packer() is not None else 'numpy (no compiler)'}")
    result = {}
    for name, params in cases(args.n, np.random.default_rng(0)).items():
        result[name] = pack_ms(params, args.size, args.warmup, args.repeats, native)
        print(f"{name:22s} {result[name]:7.3f} ms per batch of {args.n}")
    if args.json:
        chosen = args.packer if native is not None else ("compiled" if native_packer() is not None else "numpy")
        settings = {"n": args.n, "size": args.size, "packer": chosen, "warmup": args.warmup, "repeats": args.repeats}
        note = "milliseconds per pack_kernels call (median), one thread"
        record.write("pack_time", settings, result, args.json, note, load_at_start=load_at_start)
    return result


if __name__ == "__main__":
    main()
