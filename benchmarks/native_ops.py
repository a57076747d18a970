"""The native CPU stage per op on one core, beside PIL's own operation (issue 26 item 3).

For each op, a batch of N real-photo crops of S² pixels, every sample that op at bin 9
(random sign), uint8 NHWC output, through ``KernelPolicyStage.native()`` with the OpenMP
threads the environment gives (run with ``OMP_NUM_THREADS=1`` for per-core figures); PIL
applies the same op image by image on one thread (``ImageOps``/``ImageEnhance``/
``Image.transform``, nearest). Reported: images/s of each, and the stage's bytes/s
counting one read and one write of each image (the minimum). Median of ``--repeats``.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 python benchmarks/native_ops.py
    OMP_NUM_THREADS=1 PYTHONPATH=. nice -n 10 python benchmarks/native_ops.py --before OTHER_TREE --rounds 2 \\
        --json benchmarks/results/native_ops_cpu.json
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/native_ops.py --fused --before OTHER_TREE \\
        --json benchmarks/results/native_ops_fused_cpu.json     # the device loops on the CPU

With ``--before``, the stage of another checkout (its ``fastpolicy`` on ``PYTHONPATH``) and
this one's run alternately in subprocesses, ``--rounds`` times each, so that a change of the
machine's load falls on both alike; per op the median over the rounds is kept.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from fastpolicy.bench import record
from fastpolicy.bench.timing import median_seconds


def _affine(matrix):
    return lambda im, v: im.transform(im.size, Image.AFFINE, matrix(v), Image.NEAREST, fillcolor=(128, 128, 128))


_PIL = {
    "Invert": lambda im, v: ImageOps.invert(im),
    "Posterize": lambda im, v: ImageOps.posterize(im, int(v)),
    "Solarize": lambda im, v: ImageOps.solarize(im, v),
    "Brightness": lambda im, v: ImageEnhance.Brightness(im).enhance(v),
    "Contrast": lambda im, v: ImageEnhance.Contrast(im).enhance(v),
    "AutoContrast": lambda im, v: ImageOps.autocontrast(im),
    "Equalize": lambda im, v: ImageOps.equalize(im),
    "Color": lambda im, v: ImageEnhance.Color(im).enhance(v),
    "Sharpness": lambda im, v: ImageEnhance.Sharpness(im).enhance(v),
    "Rotate": lambda im, v: im.rotate(v, resample=Image.NEAREST, fillcolor=(128, 128, 128)),
    "ShearX": _affine(lambda v: (1, v, 0, 0, 1, 0)),
    "ShearY": _affine(lambda v: (1, 0, 0, v, 1, 0)),
    "TranslateX": _affine(lambda v: (1, 0, v, 0, 1, 0)),
    "TranslateY": _affine(lambda v: (1, 0, 0, 0, 1, v)),
}


def measure(n: int, size: int, repeats: int, fused: bool = False) -> dict:
    """Per op: native and PIL images/s, native GB/s (one read + one write per image) and the ratio.
    ``fused``: the native build's fused path (``fp_policy``, the device loops compiled for the
    CPU) instead of its default per-slot row loops."""
    from fastpolicy import OPS
    from fastpolicy.backends.kernel_stage import KernelPolicyStage
    from fastpolicy.data.photo_tree import photo_batch
    from fastpolicy.sampling import complete
    from fastpolicy.spaces import adversarial

    stage = KernelPolicyStage.native(fused=fused)
    images = photo_batch(n, size, size)
    pil_images = [Image.fromarray(image) for image in images[:8]]
    rng = np.random.default_rng(0)
    result = {}
    for name, pil in _PIL.items():
        op = np.full((n, 2), -1)
        op[:, 0] = OPS[name].id
        params = complete(op, np.full((n, 2), 9), adversarial(), rng)
        out = np.empty_like(images)
        seconds = median_seconds(lambda p=params, o=out: stage.apply(images, p, out=o), lambda: None, 1, repeats)
        value = float(params.value[0, 0])
        pil_seconds = median_seconds(lambda f=pil, v=value: [f(im, v) for im in pil_images], lambda: None, 1, repeats)
        pil_seconds /= len(pil_images)
        result[name] = {
            "native_images_per_s": n / seconds,
            "native_gb_per_s": 2 * images.nbytes / seconds / 1e9,
            "pil_images_per_s": 1 / pil_seconds,
            "native_over_pil": pil_seconds * n / seconds,
        }
    return result


def _run_tree(tree: Path, args) -> dict:
    """:func:`measure` in a subprocess importing ``fastpolicy`` from ``tree``."""
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "ops.json")
        command = [sys.executable, __file__, "--n", str(args.n), "--size", str(args.size)]
        command += ["--repeats", str(args.repeats), "--raw", path] + (["--fused"] if args.fused else [])
        subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(tree)})
        with open(path) as handle:
            return json.load(handle)


def _commit(tree: Path) -> str:
    """The checkout's commit (short hash, ``+`` if it has uncommitted changes), or ``unknown``."""
    try:
        run = functools.partial(subprocess.run, capture_output=True, text=True, check=True, cwd=tree)
        head = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+" if dirty else "")


def _print(label: str, result: dict) -> None:
    for name, r in result.items():
        print(
            f"{label}{name:13s} native {r['native_images_per_s']:8.0f} img/s {r['native_gb_per_s']:5.2f} GB/s   "
            f"PIL {r['pil_images_per_s']:7.0f} img/s   ratio {r['native_over_pil']:.2f}"
        )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32, help="images per batch")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--fused", action="store_true", help="time the native build's fused path (fp_policy's device loops)"
    )
    parser.add_argument("--before", default=None, help="another checkout to compare with (interleaved)")
    parser.add_argument("--rounds", type=int, default=2, help="with --before: runs of each tree")
    parser.add_argument("--json", default=None, help="write the result record here")
    parser.add_argument("--note", default="", help="added to the record's note (e.g. the machine's state)")
    parser.add_argument("--raw", default=None, help=argparse.SUPPRESS)  # a subprocess's bare result
    args = parser.parse_args(argv)
    if args.raw:
        result = measure(args.n, args.size, args.repeats, args.fused)
        with open(args.raw, "w") as handle:
            json.dump(result, handle)
        return result
    if args.before is None:
        results = {"after": measure(args.n, args.size, args.repeats, args.fused)}
        _print("", results["after"])
    else:
        trees = {"before": Path(args.before).resolve(), "after": Path(__file__).resolve().parents[1]}
        runs: dict[str, list[dict]] = {label: [] for label in trees}
        for r in range(args.rounds):
            for label in ["before", "after"] if r % 2 == 0 else ["after", "before"]:
                runs[label].append(_run_tree(trees[label], args))
        results = {
            label: {
                name: {key: statistics.median(run[name][key] for run in done) for key in done[0][name]}
                for name in done[0]
            }
            for label, done in runs.items()
        }
        for label, result in results.items():
            _print(f"{label:7s}", result)
    if args.json:
        settings = {
            "n": args.n,
            "size": args.size,
            "repeats": args.repeats,
            "bin": 9,
            "fused": args.fused,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
        if args.before:
            settings["rounds"] = args.rounds
            settings["trees"] = {label: f"{tree} at {_commit(tree)}" for label, tree in trees.items()}
        note = (
            "per op: the native stage's images/s and GB/s (one read + one write of each uint8 224² RGB image), "
            "PIL's images/s on one thread, and their ratio; 'before' and 'after' are two checkouts run "
            "alternately, the median of the rounds per op"
        ) + (f"; {args.note}" if args.note else "")
        record.write("native_ops", settings, results, args.json, note)
    return results


if __name__ == "__main__":
    main()
