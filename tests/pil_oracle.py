"""AutoAugment's original PIL calls, the oracle the NumPy reference is tested against.

One function per registry op, keyed by name: ``oracle(pil_image, value, center, other)``
→ PIL image, with ``value`` in the registry's physical unit. A test asserts this table
covers the registry exactly, so a new op cannot go untested.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

GREY = 128


def _fill(img: Image.Image):
    return GREY if img.mode == "L" else (GREY,) * 3


def _affine(img, matrix):
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.NEAREST, fillcolor=_fill(img))


def _cutout(img, value, center, other):
    w, h = img.size
    side = round(value * min(h, w))
    y0 = int(center[0] * h) - side // 2
    x0 = int(center[1] * w) - side // 2
    x1, y1 = min(x0 + side, w), min(y0 + side, h)
    x0, y0 = max(x0, 0), max(y0, 0)
    out = img.copy()
    if x1 > x0 and y1 > y0:
        ImageDraw.Draw(out).rectangle((x0, y0, x1 - 1, y1 - 1), fill=_fill(img))
    return out


ORACLE = {
    "ShearX": lambda img, v, c, o: _affine(img, (1, v, 0, 0, 1, 0)),
    "ShearY": lambda img, v, c, o: _affine(img, (1, 0, 0, v, 1, 0)),
    "TranslateX": lambda img, v, c, o: _affine(img, (1, 0, v * img.size[0], 0, 1, 0)),
    "TranslateY": lambda img, v, c, o: _affine(img, (1, 0, 0, 0, 1, v * img.size[1])),
    "Rotate": lambda img, v, c, o: img.rotate(v, resample=Image.NEAREST, fillcolor=_fill(img)),
    "AutoContrast": lambda img, v, c, o: ImageOps.autocontrast(img),
    "Invert": lambda img, v, c, o: ImageOps.invert(img),
    "Equalize": lambda img, v, c, o: ImageOps.equalize(img),
    "Solarize": lambda img, v, c, o: ImageOps.solarize(img, v),
    # Pillow ≥ 13 refuses 0 bits (AugMix's and timm's top levels); Pillow's own mask then clears
    # every bit (older Pillow did so), which is the reference's answer too
    "Posterize": lambda img, v, c, o: (
        ImageOps.posterize(img, int(v)) if int(v) >= 1 else img.point([0] * 256 * len(img.getbands()))
    ),
    "Contrast": lambda img, v, c, o: ImageEnhance.Contrast(img).enhance(v),
    "Color": lambda img, v, c, o: ImageEnhance.Color(img).enhance(v),
    "Brightness": lambda img, v, c, o: ImageEnhance.Brightness(img).enhance(v),
    "Sharpness": lambda img, v, c, o: ImageEnhance.Sharpness(img).enhance(v),
    "Cutout": _cutout,
    "SamplePairing": lambda img, v, c, o: Image.blend(img, o, v),
    # timm's solarize_add (thresh 128), its own loop
    "SolarizeAdd": lambda img, v, c, o: img.point(
        [min(255, i + int(v)) if i < 128 else i for i in range(256)] * len(img.getbands())
    ),
    # PIL's GaussianBlur as timm calls it (ImageFilter's three box passes)
    "GaussianBlur": lambda img, v, c, o: img.filter(ImageFilter.GaussianBlur(v)),
}


def pil_apply(name: str, image: np.ndarray, value: float, center=None, other=None) -> np.ndarray:
    """Run the oracle on a uint8 HW / HWC array and return an array of the same shape."""
    squeeze = image.ndim == 3 and image.shape[2] == 1
    arr = image[..., 0] if squeeze else image
    pil_other = None
    if other is not None:
        pil_other = Image.fromarray(other[..., 0] if squeeze else other)
    out = np.asarray(ORACLE[name](Image.fromarray(arr), float(value), center, pil_other))
    return out[..., None] if squeeze else out
