"""ImageNet-layout JPEG trees made of real photographs, for loader tests and benchmarks.

ImageNet is not shipped; these trees have its layout (``root/<class>/<image>.JPEG``)
and its typical image sizes, cut from the photographs bundled with scikit-image and
scikit-learn (installed with ``.[dev]``), so nothing is downloaded.
"""

from __future__ import annotations

import os

import numpy as np


def bundled_photos() -> list[np.ndarray]:
    """The RGB photographs bundled with scikit-image and scikit-learn (uint8 HWC)."""
    try:
        from skimage import data
        from sklearn.datasets import load_sample_images
    except ImportError as error:
        raise ImportError("photo trees need scikit-image and scikit-learn: pip install -e '.[dev]'") from error
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    return photos + list(load_sample_images().images)


def photo_batch(count: int, height: int, width: int, sources: list[np.ndarray] | None = None) -> np.ndarray:
    """uint8 [count, height, width, C]: crops at varied offsets of ``sources`` (uint8 HWC
    images, all with C channels; default :func:`bundled_photos`), a pre-decoded batch."""
    sources = [
        p for p in (bundled_photos() if sources is None else sources) if p.shape[0] >= height and p.shape[1] >= width
    ]
    if not sources:
        raise ValueError(f"no source photo is {height}x{width} or larger")
    out = np.empty((count, height, width, sources[0].shape[2]), np.uint8)
    for i in range(count):
        image = sources[i % len(sources)]
        y, x = (i * 37) % (image.shape[0] - height + 1), (i * 53) % (image.shape[1] - width + 1)
        out[i] = image[y : y + height, x : x + width]
    return out


def make_photo_tree(
    root: str,
    classes: int = 4,
    per_class: int = 4,
    size: tuple[int, int] = (500, 375),
    seed: int = 0,
    quality: int = 90,
) -> list[str]:
    """Write ``classes × per_class`` JPEGs under ``root/class<i>/``; returns their paths.

    Each image is a random crop of a bundled photo (class ``i`` uses photo ``i mod P``),
    resized to about ``size`` (width, height) ± 10 %, so sizes vary like ImageNet's.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = bundled_photos()
    paths = []
    for c in range(classes):
        folder = os.path.join(root, f"class{c:03d}")
        os.makedirs(folder, exist_ok=True)
        photo = photos[c % len(photos)]
        for k in range(per_class):
            h, w = photo.shape[:2]
            ch, cw = int(h * rng.uniform(0.6, 1)), int(w * rng.uniform(0.6, 1))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            target = (int(size[0] * rng.uniform(0.9, 1.1)), int(size[1] * rng.uniform(0.9, 1.1)))
            image = Image.fromarray(photo[y : y + ch, x : x + cw]).resize(target, Image.Resampling.BILINEAR)
            path = os.path.join(folder, f"img{k:04d}.JPEG")
            image.save(path, quality=quality)
            paths.append(path)
    return paths
