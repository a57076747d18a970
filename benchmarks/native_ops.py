"""The native CPU stage per op on one core, beside PIL's own operation (issue 26 item 3).

For each op, a batch of N real-photo crops of S² pixels, every sample that op at bin 9
(random sign), uint8 NHWC output, through ``KernelPolicyStage.native()`` with the OpenMP
threads the environment gives (run with ``OMP_NUM_THREADS=1`` for per-core figures); PIL
applies the same op image by image on one thread (``ImageOps``/``ImageEnhance``/
``Image.transform``, nearest). Reported: images/s of each, and the stage's bytes/s
counting one read and one write of each image (the minimum). Median of ``--repeats``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/native_ops.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from fastpolicy import OPS
from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.data.photo_tree import photo_batch
from fastpolicy.sampling import complete
from fastpolicy.spaces import adversarial

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
    "ShearX": lambda im, v: im.transform(im.size, Image.AFFINE, (1, v, 0, 0, 1, 0), Image.NEAREST, fillcolor=128),
    "TranslateX": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, v, 0, 1, 0), Image.NEAREST, fillcolor=128),
}


def _median(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32, help="images per batch")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    stage = KernelPolicyStage.native()
    images = photo_batch(args.n, args.size, args.size)
    pil_images = [Image.fromarray(image) for image in images[:8]]
    rng = np.random.default_rng(0)
    result = {}
    for name, pil in _PIL.items():
        op = np.full((args.n, 2), -1)
        op[:, 0] = OPS[name].id
        params = complete(op, np.full((args.n, 2), 9), adversarial(), rng)
        out = np.empty_like(images)
        seconds = _median(lambda p=params, o=out: stage.apply(images, p, out=o), args.repeats)
        value = float(params.value[0, 0])
        pil_seconds = _median(lambda f=pil, v=value: [f(im, v) for im in pil_images], args.repeats) / len(pil_images)
        result[name] = {
            "native_images_per_s": args.n / seconds,
            "native_gb_per_s": 2 * images.nbytes / seconds / 1e9,
            "pil_images_per_s": 1 / pil_seconds,
            "native_over_pil": pil_seconds * args.n / seconds,
        }
        r = result[name]
        print(
            f"{name:13s} native {r['native_images_per_s']:8.0f} img/s {r['native_gb_per_s']:5.2f} GB/s   "
            f"PIL {r['pil_images_per_s']:7.0f} img/s   ratio {r['native_over_pil']:.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
