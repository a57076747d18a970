"""The DataLoader drop-in scenario run from a plain script, beside ``fastpolicy bench`` (issue 39).

    python benchmarks/transform_context.py --tree TREE --json benchmarks/results/transform_context_cpu_DATE.json

``fastpolicy bench --scenarios transform`` recorded PolicyAugment 8–10 % slower than torchvision
with RandAugment on PIL images, though it is faster per call. This runs the very same scenario
code (:func:`fastpolicy.bench.transform.run_transform`: 2 spawned DataLoader workers, the
contenders interleaved) in a plain ``python`` process instead of the ``fastpolicy bench``
command, on the same image tree, so the two records tell whether the gap follows the drop-in or
the command's process.
"""

from __future__ import annotations

import argparse
import os

from fastpolicy.bench import record
from fastpolicy.bench.transform import run_transform


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", required=True, help="an ImageNet-layout folder (the one the bench run read)")
    parser.add_argument("--policies", nargs="+", default=["randaugment"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the record here (a new file)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.tree):
        parser.error(f"--tree {args.tree}: no such folder")
    average = record.start(args.json)
    rows = run_transform(args.tree, args.batch, args.policies, args.workers, args.warmup, args.batches, args.repeats)
    rates = {(row["case"], row["contender"].split(",")[0]): row["images_per_s"] for row in rows}
    ratios = {
        case: rates[case, "torchvision v2"] / rates[case, "fastpolicy PolicyAugment"]
        for case in sorted({row["case"] for row in rows})
    }
    for case, ratio in ratios.items():
        print(f"{case:<36} torchvision / PolicyAugment {ratio:.3f}")
    result = {"rows": rows, "torchvision_over_fastpolicy": ratios}
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        record.write(
            "transform_context",
            settings,
            result,
            args.json,
            "run_transform from a plain python process (not the fastpolicy bench command)",
            modules=("PIL", "torchvision"),
            load_at_start=average,
        )
    return result


if __name__ == "__main__":
    main()
