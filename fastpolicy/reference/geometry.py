"""Geometric ops as one affine warp: PIL's nearest-neighbour ``Image.transform``, exactly.

Every geometric op (shear, translate, rotate) is a 2×3 matrix ``(a, b, c, d, e, f)``
in PIL's convention: it maps an *output* pixel centre ``(x + .5, y + .5)`` to the
*input* point ``(a x + b y + c, d x + e y + f)``; the output pixel takes the input
pixel containing that point, or ``fill`` outside the image.

PIL has two nearest-neighbour engines and this module reproduces both bit for bit:

* ``b == d == 0`` (translation, and the identity): ``ImagingScaleAffine``, float64
  positions accumulated pixel by pixel and truncated.
* otherwise (shear, rotation): ``affine_fixed``, 16.16 fixed-point integers.

The fixed-point form (:func:`fixed_point`) is also what the GPU kernels consume, so
they can match the reference exactly with integer arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

FILL = 128
"""Grey (all channels) for pixels that map outside the input image: AutoAugment's default."""


def check_fill(fill, what: str = "fill") -> int:
    """``fill`` as an int level in 0..255; ValueError naming ``what`` and the value otherwise
    (bools and fractions are refused, not truncated)."""
    if isinstance(fill, bool) or not isinstance(fill, (int, np.integer)) or not 0 <= fill <= 255:
        raise ValueError(f"{what} must be an integer level in 0..255, got {fill!r}")
    return int(fill)


def shear_x(value: float, height: int, width: int) -> tuple[float, ...]:
    """ShearX as in AutoAugment: ``x_in = x + value * y`` (about the top-left corner)."""
    return (1.0, float(value), 0.0, 0.0, 1.0, 0.0)


def shear_y(value: float, height: int, width: int) -> tuple[float, ...]:
    """ShearY: ``y_in = value * x + y``."""
    return (1.0, 0.0, 0.0, float(value), 1.0, 0.0)


def translate_x(value: float, height: int, width: int) -> tuple[float, ...]:
    """TranslateX by ``value`` × width pixels (positive moves the content left)."""
    return (1.0, 0.0, float(value) * width, 0.0, 1.0, 0.0)


def translate_y(value: float, height: int, width: int) -> tuple[float, ...]:
    """TranslateY by ``value`` × height pixels (positive moves the content up)."""
    return (1.0, 0.0, 0.0, 0.0, 1.0, float(value) * height)


def rotate(value: float, height: int, width: int) -> tuple[float, ...]:
    """Rotate by ``value`` degrees counter-clockwise about the centre: ``Image.rotate``'s matrix.

    Reproduces Pillow's arithmetic (angle modulo 360, entries rounded to 15
    decimals) so the fixed-point matrix equals the one PIL builds.
    """
    angle = float(value) % 360.0
    if angle == 0:
        return (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    centre_x, centre_y = width / 2, height / 2
    angle = -math.radians(angle)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
    c = a * -centre_x + b * -centre_y + 0.0 + centre_x
    f = d * -centre_x + e * -centre_y + 0.0 + centre_y
    return (a, b, c, d, e, f)


def is_translation(matrix) -> bool:
    """True where PIL takes its scale/translate engine (``b == d == 0``)."""
    return matrix[1] == 0 and matrix[3] == 0


def fixed_point(matrix) -> np.ndarray:
    """int64[6]: PIL's 16.16 fixed-point form ``(a0, a1, a2, a3, a4, a5)`` of ``matrix``.

    ``a2``/``a5`` already include the half-pixel offset, so the input pixel of output
    ``(x, y)`` is ``((a2 + y*a1 + x*a0) >> 16, (a5 + y*a4 + x*a3) >> 16)``.
    """
    a, b, c, d, e, f = (float(v) for v in matrix)

    def fix(v: float) -> int:
        return math.floor(v * 65536.0 + 0.5)

    return np.array(
        [fix(a), fix(b), fix(c + a * 0.5 + b * 0.5), fix(d), fix(e), fix(f + d * 0.5 + e * 0.5)],
        dtype=np.int64,
    )


def float_matrix(matrix, height: int, width: int) -> tuple[float, ...]:
    """The float matrix with which a float warp engine picks exactly PIL's source pixels.

    For a warp that maps the output pixel centre ``(x + .5, y + .5)`` through the matrix
    and takes the input pixel containing the result (DALI ``warp_affine`` with
    ``inverse_map=True`` and nearest-neighbour interpolation), this matrix reproduces
    PIL's 16.16 fixed-point arithmetic: its entries are the fixed-point values, with the
    half-pixel offset moved back out of the constant terms. Translations (PIL's float
    engine) are returned unchanged.
    """
    if is_translation(matrix):
        return tuple(float(v) for v in matrix)
    _check_fixed_range(matrix, height, width)
    a0, a1, a2, a3, a4, a5 = (int(v) / 65536.0 for v in fixed_point(matrix))
    return (a0, a1, a2 - (a0 + a1) / 2, a3, a4, a5 - (a3 + a4) / 2)


def _check_fixed_range(matrix, height: int, width: int) -> None:
    a, b, c, d, e, f = matrix
    for x, y in ((0, 0), (width, height), (0, height), (width, 0)):
        if abs(x * a + y * b + c) >= 32768.0 or abs(x * d + y * e + f) >= 32768.0:
            raise ValueError(
                f"affine warp of a {height}x{width} image maps a corner beyond ±32768 px; "
                "PIL switches to a float engine there, which fastpolicy does not reproduce"
            )


def translation_indices(matrix, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Source row (int64[H]) and column (int64[W]) of a translation; -1 marks fill.

    PIL's ``ImagingScaleAffine`` (used where ``b == d == 0``): positions start at
    ``c + a/2`` and grow by ``a``, in float64, one addition per pixel, and are truncated.
    """
    a, _, c, _, e, f = (float(v) for v in matrix)
    # np.add.accumulate adds sequentially, like PIL's C loop.
    xs = np.add.accumulate(np.r_[c + a * 0.5, np.full(width - 1, a)])
    ys = np.add.accumulate(np.r_[f + e * 0.5, np.full(height - 1, e)])
    cols = np.where(xs < 0, -1, np.trunc(xs)).astype(np.int64)
    rows = np.where(ys < 0, -1, np.trunc(ys)).astype(np.int64)
    cols[(cols < 0) | (cols >= width)] = -1
    rows[(rows < 0) | (rows >= height)] = -1
    return rows, cols


def source_indices(matrix, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Input row and column (int64[H, W] each) read by every output pixel; -1 marks fill.

    Output size equals input size (AutoAugment's ops keep the image size).
    """
    if is_translation(matrix):
        rows, cols = translation_indices(matrix, height, width)
        rows, cols = np.broadcast_to(rows[:, None], (height, width)), np.broadcast_to(cols, (height, width))
        invalid = (rows < 0) | (cols < 0)
        return np.where(invalid, -1, rows), np.where(invalid, -1, cols)
    _check_fixed_range(matrix, height, width)
    a0, a1, a2, a3, a4, a5 = fixed_point(matrix)
    y = np.arange(height, dtype=np.int64)[:, None]
    x = np.arange(width, dtype=np.int64)[None, :]
    cols = (a2 + y * a1 + x * a0) >> 16
    rows = (a5 + y * a4 + x * a3) >> 16
    invalid = (cols < 0) | (cols >= width) | (rows < 0) | (rows >= height)
    return np.where(invalid, -1, rows), np.where(invalid, -1, cols)


def warp(image: np.ndarray, matrix, fill: int = FILL) -> np.ndarray:
    """Nearest-neighbour affine warp of ``image`` (uint8 HWC) with PIL's semantics; same shape."""
    height, width = image.shape[:2]
    rows, cols = source_indices(matrix, height, width)
    out = image[np.maximum(rows, 0), np.maximum(cols, 0)]
    out[rows < 0] = fill
    return out


def geometric(matrix_fn):
    """Reference op ``(image, value) -> image`` that warps by ``matrix_fn(value, H, W)``."""

    def op(image: np.ndarray, value: float, fill: int = FILL, **_) -> np.ndarray:
        return warp(image, matrix_fn(value, *image.shape[:2]), fill)

    op.__name__ = matrix_fn.__name__
    op.__doc__ = (
        f"Warp by :func:`{matrix_fn.__name__}`, pixels from outside the image set to ``fill`` (grey "
        "128 by default, AutoAugment's); matches PIL ``Image.transform`` (NEAREST, ``fillcolor``) "
        "exactly."
    )
    op.matrix = matrix_fn
    return op
