"""``fastpolicy bench``: all scenarios in one run, on the same generated tree of real photos.

Scenarios (``--scenarios``):

1. ``decode`` — decode + random-resized-crop 224 + flip, M = 1: fastpolicy's loader, DALI's
   plain pipeline, torchvision ``ImageFolder`` + ``DataLoader``;
2. ``policy`` — the same plus a per-sample policy, for each ``--M`` and each standard
   policy of ``--policies`` (AutoAugment ImageNet, RandAugment, TrivialAugmentWide), the
   same policy in every contender: fastpolicy (on a GPU also its DALI backend), DALI
   ``auto_aug``, torchvision v2 in workers, Kornia on the device batch (AutoAugment, if
   installed); plus fastpolicy with M random Adversarial-AutoAugment policies;
3. ``transform`` — ``PolicyAugment`` as torchvision's drop-in: an ``ImageFolder`` in
   ``--workers`` DataLoader processes, PIL and uint8-tensor inputs, PolicyAugment vs
   torchvision's own policy class; with ``--device gpu`` instead a uint8 CUDA batch, one
   PolicyAugment call vs torchvision image by image (:mod:`.transform`);
4. ``shards`` — the same images as a folder, webdataset tars and TFRecord files, read by
   fastpolicy's loader: decode only (M = 1) and the largest ``--M`` with the first policy
   of ``--policies`` (:mod:`.shards`);
5. ``stage`` — the policy stage alone on pre-decoded batches, per op family (:mod:`.stage`);
6. ``training`` — GPU only: a ResNet-50 step fed by the loader vs pre-staged tensors;
7. ``host`` — the loader's host time per batch besides DALI's run and the stage's
   compute (:mod:`.host`), at the largest ``--M``.

The contenders of each case run interleaved (:func:`~.timing.interleaved_rates`: repeat r
runs each once, in a rotated order), so a changing load falls on all of them alike. The
tree is an ImageNet-layout folder of JPEG crops of real photos at ~500×375, generated in a
temporary folder that is removed at the end (also on an error or Ctrl-C). Output: the
table, ``benchmarks/results/bench_<device>.json`` (machine, versions, command, date) and a
bar chart beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import tempfile

import torch

from ..data.photo_tree import make_photo_tree
from ..loader.dali_priority import PRIORITIES
from ..loader.settings import Pipeline
from . import peers, record, report
from .shards import run_shards
from .stage import run_stage
from .timing import Paced, interleaved_rates
from .transform import run_transform, run_transform_batches

SCENARIOS = ("decode", "policy", "transform", "shards", "stage", "training", "host")


def _loader_rows(args, root: str) -> list[dict]:
    """The decode and policy scenarios: each group's contenders interleaved (:func:`interleaved_rates`)."""
    rows = []
    sync = torch.cuda.synchronize if args.device == "gpu" else None
    plain = (args.warmup, args.batches)
    # A DataLoader holds up to 2 batches per worker ready, and its workers deliver batches in
    # bursts: drain the buffer before timing, and time several batches per worker, so that the
    # figure is how fast the workers make batches — not the buffer, nor a gap between bursts.
    drained = (args.warmup + 2 * args.workers + 1, max(args.batches, 3 * args.workers))

    def measure(scenario: str, M: int, case: str, contenders: dict[str, tuple]):
        paced = {name: Paced(make, *pace) for name, (make, pace) in contenders.items()}
        for contender, rate in interleaved_rates(paced, M * args.batch, args.repeats, sync).items():
            rows.append(
                {
                    "scenario": scenario,
                    "case": case,
                    "M": M,
                    "device": args.device,
                    "contender": contender,
                    "images_per_s": rate,
                }
            )
            print(f"  {scenario:8s} M={M}  {contender:58s} {rate:10.1f} img/s", flush=True)

    workers = f"torchvision v2, {args.workers} DataLoader workers"
    N, dev, threads = args.batch, args.device, args.threads
    fast = functools.partial(peers.fastpolicy_loader, root, N, device=dev, threads=threads, priority=args.dali_priority)
    dali = functools.partial(peers.dali_pipeline, root, N, device=dev, threads=threads)
    vision = functools.partial(peers.torchvision_loader, root, N, device=dev, workers=args.workers)
    if "decode" in args.scenarios:
        measure(
            "decode",
            1,
            "loader",
            {
                "fastpolicy PolicyDALILoader": (functools.partial(fast, M=1, policy=None), plain),
                "DALI pipeline": (functools.partial(dali, M=1, policy=None), plain),
                workers: (functools.partial(vision, M=1, policy=None), drained),
            },
        )
    if "policy" in args.scenarios:
        for M in args.M:
            for policy in args.policies:
                name = peers.NAMES[policy]
                contenders = {f"fastpolicy, {name}": (functools.partial(fast, M=M, policy=policy), plain)}
                if dev == "gpu":
                    contenders[f"fastpolicy DALI backend, {name}"] = (
                        functools.partial(fast, M=M, policy=policy, backend="dali"),
                        plain,
                    )
                contenders[f"DALI auto_aug, {name}"] = (functools.partial(dali, M=M, policy=policy), plain)
                contenders[f"{workers}, {name}"] = (functools.partial(vision, M=M, policy=policy), drained)
                if policy == "autoaugment" and peers.kornia_available():
                    contenders[f"Kornia AutoAugment on the {dev.upper()} batch (decode in {args.workers} workers)"] = (
                        functools.partial(peers.kornia_loader, root, N, M, dev, args.workers),
                        drained,
                    )
                measure("policy", M, name, contenders)
            random = "fastpolicy, M random adversarial policies (2 ops every copy)"
            measure("policy", M, "adversarial", {random: (functools.partial(fast, M=M, policy="random"), plain)})
    return rows


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every flag's default in its help line."""


class _Parser(argparse.ArgumentParser):
    """A bad flag or value is one line naming it (``fastpolicy bench: error: …``), exit status 2,
    as in every other command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def default_out(device: str, now: datetime.datetime | None = None) -> str:
    """Where a bench writes without ``--out``: a new ``runs/bench-<UTC date>-<time>-<device>/bench_<device>.json``,
    never a committed record (``--out benchmarks/results/bench_<device>.json`` refreshes those)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return os.path.join("runs", f"bench-{now:%Y%m%d-%H%M%S}-{device}", f"bench_{device}.json")


def build_parser() -> argparse.ArgumentParser:
    from ..config import nonnegative_int, positive_int

    gpu = torch.cuda.is_available()
    parser = _Parser(prog="fastpolicy bench", description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="what to measure")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="gpu" if gpu else "cpu", help="where to run")
    parser.add_argument("--tree", default=None, help="an ImageNet-layout folder to read (default: generate one)")
    parser.add_argument(
        "--images", type=positive_int, default=1024 if gpu else 256, help="images in the generated tree"
    )
    parser.add_argument("--batch", type=positive_int, default=128 if gpu else 32, help="N, distinct images per batch")
    parser.add_argument("--M", type=positive_int, nargs="+", default=[1, 8], help="copies per image, one run each")
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=peers.POLICIES,
        default=list(peers.POLICIES),
        help="standard policies of the policy scenario (every contender applies each)",
    )
    parser.add_argument("--batches", type=positive_int, default=8 if gpu else 4, help="timed batches per run")
    parser.add_argument("--warmup", type=nonnegative_int, default=2, help="untimed batches before each run")
    parser.add_argument("--repeats", type=positive_int, default=3, help="interleaved runs per contender")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=max(1, (os.cpu_count() or 2) - 2) if gpu else 2,
        help="torchvision DataLoader workers",
    )
    parser.add_argument("--threads", type=positive_int, default=8 if gpu else 2, help="DALI threads per pipeline")
    parser.add_argument(
        "--dali-priority",
        choices=PRIORITIES,
        default=Pipeline.dali_priority,
        help="scheduling of the fastpolicy loaders' DALI threads (Pipeline's dali_priority; None: idle on the CPU, "
        "normal on a GPU)",
    )
    parser.add_argument("--stage-n", type=positive_int, default=2048 if gpu else 128, help="images per stage batch")
    parser.add_argument("--train-batch", type=positive_int, default=32, help="N of the training scenario (M = 8)")
    parser.add_argument(
        "--out",
        default=None,
        help="results JSON (default: a new runs/bench-<date>-<time>-<device>/bench_<device>.json; "
        "--out benchmarks/results/bench_<device>.json refreshes the committed record)",
    )
    return parser


def main(argv=None) -> dict:
    """Run the chosen scenarios, write the JSON and the chart; returns the JSON record.
    Everything generated (the image tree, the shards) lives in one temporary folder, removed
    at the end — also after an error or Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device == "gpu" and not torch.cuda.is_available():
        parser.error("--device gpu, but torch sees no CUDA GPU")
    if args.tree is not None and not os.path.isdir(args.tree):
        parser.error(f"--tree {args.tree}: no such folder (an ImageNet-layout folder of class folders)")
    out = args.out or default_out(args.device)
    load_at_start = record.load_average()  # what else ran: at the end the bench's own threads count too
    with tempfile.TemporaryDirectory(prefix="fastpolicy-bench-") as scratch, _temporary_files_in(scratch):
        rows = _run(args, scratch)
    report.add_ratios(rows)
    print(report.table(rows))
    result = record.write(
        "bench",
        {k: v for k, v in vars(args).items() if k not in ("out", "tree")}
        | {"image_size": peers.SIZE, "source_size": [500, 375]},
        rows,
        out,
        note="images/s counts output images (M copies of N images per batch); compare the "
        "ratios — absolute numbers hold for this machine only; the contenders of each case "
        "ran interleaved, each figure the median of its runs",
        modules=("torchvision", "nvidia.dali", "cupy", "kornia"),
        load_at_start=load_at_start,
    )
    chart = os.path.splitext(out)[0] + ".png"
    report.bar_chart(
        rows,
        chart,
        f"fastpolicy bench ({args.device}): {result['machine']['cpu']}"
        + (f", {result['machine']['gpu']['name']}" if result["machine"]["gpu"] else ""),
    )
    print(f"wrote {chart}")
    return result


@contextlib.contextmanager
def _temporary_files_in(folder: str):
    """Make ``folder/tmp`` Python's temporary directory for the ``with`` body (DataLoader
    workers forked in it too): what the libraries write there — DALI's conditionals leave
    one ``__autograph_generated_file*.py`` per traced function, about 85 per run — goes
    with ``folder``."""
    inner = os.path.join(folder, "tmp")
    os.makedirs(inner)
    before, tempfile.tempdir = tempfile.tempdir, inner
    try:
        yield inner
    finally:
        tempfile.tempdir = before


def _run(args, scratch: str) -> list[dict]:
    """Every chosen scenario's rows; generated files go under ``scratch``."""
    root = args.tree
    if root is None:
        root = os.path.join(scratch, "tree")
        make_photo_tree(root, classes=8, per_class=max(1, args.images // 8), size=(500, 375))
    print(f"fastpolicy bench on {args.device}: tree {root}, N={args.batch}, M={args.M}", flush=True)
    rows = _loader_rows(args, root)
    if "transform" in args.scenarios and args.device == "gpu":  # the drop-in on CUDA batches
        rows += run_transform_batches("cuda", args.batch, args.policies, args.warmup, args.batches, args.repeats)
    elif "transform" in args.scenarios:  # in DataLoader workers
        rows += run_transform(root, args.batch, args.policies, args.workers, args.warmup, args.batches, args.repeats)
    if "shards" in args.scenarios:
        shard_size = max(1, args.images // 4)
        rows += run_shards(
            root,
            os.path.join(scratch, "shards"),
            args.batch,
            max(args.M),
            args.policies[0],
            args.device,
            args.threads,
            args.warmup,
            args.batches,
            args.repeats,
            shard_size,
        )
    if "stage" in args.scenarios:
        rows += run_stage(args.stage_n, peers.SIZE, args.device, args.warmup, args.repeats, args.threads)
    if "host" in args.scenarios:
        from .host import run_host

        rows += run_host(
            root,
            args.batch,
            max(args.M),
            peers.SIZE,
            args.device,
            args.threads,
            args.batches,
            args.warmup,
            args.repeats,
            args.policies[0],
            args.dali_priority,
        )
    if "training" in args.scenarios and args.device == "gpu":
        from .training import run_training

        rows += run_training(
            root, args.train_batch, 8, args.batches, args.warmup, args.repeats, args.threads, args.dali_priority
        )
    return rows


__all__ = ["SCENARIOS", "build_parser", "default_out", "main"]
