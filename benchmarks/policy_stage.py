"""The policy stage alone: fused CUDA kernels beside DALI's per-sample selection, same parameters.

On pre-decoded uint8 batches (default 2048 crops of real photos at 224², i.e. M·N = 8·256),
one run measures, per op family of the registry:

* images/s of ``KernelPolicyStage.apply`` (host packing, uploads and launches; wall
  time to completion) and of ``DaliPolicyStage`` (DALI ``auto_aug`` ``select`` per
  sample) with identical :class:`PolicyParams`;
* the kernels' bandwidth counted at the minimum any implementation moves: one read and
  one write of every image, plus one read of the partner image for each SamplePairing
  (intermediate traffic between slots is not counted: the fused kernel has none), as a
  fraction of a device-to-device copy of the batch timed in the same run;
* launches per batch: kernel launches plus device allocations (histogram zeroing,
  intermediate images) of one ``apply`` (``KernelPolicyStage.launches``).

Families: ``geometric`` (affine ops), ``pointwise`` (tables without statistics),
``histogram`` (tables after per-image statistics), ``blend`` (Color, Sharpness),
``special`` (Cutout, SamplePairing), one op per sample in one slot;
``adversarial_policies``: 8 random Adversarial-AutoAugment policies, two slots; and the
standard policies (``autoaugment``, ``randaugment``, ``trivialaugment_wide``) — the case
list of :func:`fastpolicy.bench.stage.cases`.
Warm-up excluded; each figure is the median of ``--repeats`` runs.

The record's ``goals`` judge issue 29's device goals, registered before any GPU ran these
kernels (:data:`GOALS`): at least 1 M images/s on the mixed two-slot policies, pointwise ops
at 50 % of the copy bandwidth or more, histogram ops within 1.5× of pointwise; each is
"met", "not met", or "not applicable" (a CPU run, or another size than 224²).

    python benchmarks/policy_stage.py                 # on a GPU: benchmarks/results/policy_stage_gpu.json
    python benchmarks/policy_stage.py --native --n 256  # the fast CPU stage beside DALI's CPU operators:
                                                      # benchmarks/results/policy_stage_cpu.json
    python benchmarks/policy_stage.py --emulate --n 8 --size 32 --out /tmp/x.json   # CPU smoke run
"""

from __future__ import annotations

import argparse
import functools
import os

import numpy as np

from fastpolicy import OPS
from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.bench import record
from fastpolicy.bench.stage import cases, families
from fastpolicy.bench.timing import median_seconds
from fastpolicy.data.photo_tree import photo_batch

GOALS = {
    "mixed two-slot policies: >= 1 M images/s at 224²": lambda by: (
        by["adversarial_policies"]["kernels_images_per_s"] >= 1e6
    ),
    "pointwise: >= 50 % of the copy bandwidth": lambda by: by["pointwise"]["kernels_bandwidth_fraction_of_copy"] >= 0.5,
    "histogram ops: within 1.5x of pointwise": lambda by: (
        by["pointwise"]["kernels_images_per_s"] <= 1.5 * by["histogram"]["kernels_images_per_s"]
    ),
}
"""Issue 29's device goals, each judged on the rows by family."""


def goals(rows: list[dict], applicable: bool) -> dict[str, str]:
    """Each of :data:`GOALS` → "met", "not met" or "not applicable"."""
    by = {row["family"]: row for row in rows}
    return {
        name: ("met" if test(by) else "not met") if applicable else "not applicable" for name, test in GOALS.items()
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048, help="images per batch (M·N)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--dali",
        choices=["auto", "off"],
        default="auto",
        help="time DALI's per-sample selection beside the kernels (auto: if DALI imports)",
    )
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="run the kernels on the CPU emulator (a smoke run: the numbers mean nothing)",
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="run the kernels as the fast CPU stage (g++/OpenMP) beside DALI's CPU operators",
    )
    parser.add_argument(
        "--fused",
        choices=["default", "on", "off"],
        default="default",
        help="slots two at a time in one launch (fp_policy) or slot by slot (default: the stage's own choice)",
    )
    parser.add_argument("--out", default=None, help="results JSON (default benchmarks/results/policy_stage_gpu.json)")
    args = parser.parse_args(argv)

    if args.emulate or args.native:
        xp, device = np, "cpu"
        stage = KernelPolicyStage.native() if args.native else KernelPolicyStage.emulated()
        sync = lambda: None  # noqa: E731
        if args.fused != "default":
            stage.fused = args.fused == "on"
    else:
        import cupy

        from fastpolicy.backends.kernel_cuda import device_stage

        xp, stage, device = cupy, device_stage(0), "gpu"
        if args.fused != "default":
            stage.fused = args.fused == "on"
        sync = cupy.cuda.Device(0).synchronize
    host = photo_batch(args.n, args.size, args.size)
    images = xp.asarray(host)
    copy_target = xp.empty_like(images)
    nbytes = host.nbytes

    def copy():
        copy_target[...] = images

    copy_s = median_seconds(copy, sync, args.warmup, args.repeats)
    copy_bandwidth = 2 * nbytes / copy_s
    print(f"device-to-device copy of {nbytes / 2**20:.0f} MiB: {copy_bandwidth / 1e9:.1f} GB/s")

    dali_stage = None
    if args.dali == "auto":
        try:
            from fastpolicy.backends.dali_stage import DaliPolicyStage

            dali_stage = DaliPolicyStage(
                args.n,
                args.size,
                args.size,
                device=device,
                device_id=0 if device == "gpu" else None,
                num_threads=min(4, os.cpu_count() or 1),
            )
        except ImportError as error:
            print(f"DALI not available ({error}); timing the kernels alone")

    rows = []
    pairing = OPS["SamplePairing"].id
    for name, params in cases(args.n, np.random.default_rng(0)).items():
        before = stage.launches
        stage.apply(images, params)
        launches = stage.launches - before
        minimum = nbytes * (2 + np.count_nonzero(params.op == pairing) / args.n)
        seconds = median_seconds(functools.partial(stage.apply, images, params), sync, args.warmup, args.repeats)
        row = {
            "family": name,
            "ops": families().get(name, "a whole policy (see fastpolicy.bench.stage.cases)"),
            "kernels_images_per_s": args.n / seconds,
            "kernels_bandwidth_fraction_of_copy": (minimum / seconds) / copy_bandwidth,
            "kernels_minimum_bytes_per_batch": int(minimum),
            "kernels_launches_per_batch": launches,
        }
        if dali_stage is not None:
            dali_s = median_seconds(
                functools.partial(dali_stage.apply, images, params), sync, args.warmup, args.repeats
            )
            row |= {"dali_select_images_per_s": args.n / dali_s, "ratio_kernels_over_dali": dali_s / seconds}
        rows.append(row)
        print(
            f"{name:22s} kernels {row['kernels_images_per_s']:10.0f} img/s "
            f"({row['kernels_bandwidth_fraction_of_copy']:.0%} of copy bandwidth, {launches} launches)"
            + (
                f"   DALI {row['dali_select_images_per_s']:9.0f} img/s   ratio {row['ratio_kernels_over_dali']:.1f}"
                if dali_stage is not None
                else ""
            )
        )
    verdicts = goals(rows, applicable=device == "gpu" and args.size == 224)
    for name, verdict in verdicts.items():
        print(f"goal {name}: {verdict}")
    default = "policy_stage_cpu.json" if args.native else "policy_stage_gpu.json"
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", default)
    note = (
        "CPU emulator smoke run: not a measurement"
        if args.emulate
        else "wall time per batch including host-side parameter packing; bandwidth counts the minimum: one "
        "read and one write of each image, plus a partner read per SamplePairing; launches include device "
        "allocations"
        + ("; 'kernels' = the fast CPU stage (backend='native'), 'copy' = a host memory copy" if args.native else "")
    )
    return record.write(
        "policy_stage",
        {k: v for k, v in vars(args).items() if k != "out"} | {"copy_bandwidth_bytes_per_s": copy_bandwidth},
        rows,
        out,
        note,
        modules=("cupy", "nvidia.dali"),
        extra={"goals": verdicts},
    )


if __name__ == "__main__":
    main()
