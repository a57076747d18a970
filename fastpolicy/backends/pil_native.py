"""The ``pil`` stage's native forms: Sharpness, Color, Equalize, AutoContrast and Contrast on
PIL images' own memory, each one compiled call from the image to a new one.

PIL's own forms of these are its slowest per pixel: ``ImageEnhance`` filters or converts the
image, then blends it in float, each step a new image; ``ImageOps`` counts a histogram, builds
its table in Python, and maps the image. A small compiled library (``kernels/pil_ops.cpp``: the
kernels' pixel rules from ``kernels/common.cuh``, the tables as the reference builds them,
``kernels/pil_levels.hpp``'s counting and lookup) reads the image's memory as
:mod:`.pil_pixels` exports it and writes a new image's. Each function returns None where that
path does not apply (no compiler, an image of another mode or in several memory blocks:
:func:`.pil_pixels.memory`), and the caller runs another form: the same pixels, slower.
"""

from __future__ import annotations

import ctypes
import math

import PIL.Image

from . import pil_pixels
from .kernel_build import HostLibrary

_OPTIONS = ("-std=c++17", "-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fopenmp-simd")


def _declare(library) -> None:
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    library.fp_pil_sharpness.argtypes = [pointer, pointer, integer, integer, integer, ctypes.c_float]
    library.fp_pil_color.argtypes = [pointer, pointer, ctypes.c_int64, integer, ctypes.c_float]
    library.fp_pil_equalize.argtypes = [pointer, pointer, ctypes.c_int64, integer, integer]
    library.fp_pil_autocontrast.argtypes = [pointer, pointer, ctypes.c_int64, integer, integer]
    library.fp_pil_contrast.argtypes = [pointer, pointer, ctypes.c_int64, integer, ctypes.c_float, integer]
    for function in (
        library.fp_pil_sharpness,
        library.fp_pil_color,
        library.fp_pil_equalize,
        library.fp_pil_autocontrast,
        library.fp_pil_contrast,
    ):
        function.restype = None


_HELPER = HostLibrary(
    "pil_ops.cpp",
    _OPTIONS,
    "pil_ops",
    _declare,
    "the pil stage's native forms",
    "PIL's own operations run instead (the same pixels, slower)",
    quiet_without_compiler=True,  # a machine without a compiler is supported: PIL's own, silently
)


def _apply(img: PIL.Image.Image, call) -> PIL.Image.Image | None:
    """A new image of ``img``'s mode and size, written by ``call(library, source, target,
    pixels, pixel_bytes)`` (the two images' addresses, ``img``'s pixel count and bytes per
    pixel); None where this path does not apply (``call`` not run). Both images' exports are
    held until ``call`` returns."""
    library = _HELPER.get()
    source = None if library is None else pil_pixels.memory(img)
    if source is None:
        return None
    out = PIL.Image.new(img.mode, img.size, None)  # not filled: every byte is written
    target = pil_pixels.memory(out)
    if target is None:
        return None
    call(library, source[1], target[1], img.size[0] * img.size[1], pil_pixels.BYTES[img.mode])
    return out


def _finite(name: str, value: float) -> float:
    """``value`` as a float; ValueError naming the op where it is not finite (a blend factor of
    inf or NaN has no pixels: the reference's float32 sums are NaN)."""
    if not math.isfinite(value):
        raise ValueError(f"{name}'s value must be finite, got {value!r}")
    return float(value)


def sharpness(img: PIL.Image.Image, value: float) -> PIL.Image.Image | None:
    """A new image: ``ImageEnhance.Sharpness(img).enhance(value)`` (mode L or RGB), or None.
    ValueError where ``value`` is not finite (as for :func:`color` and :func:`contrast`)."""
    value = _finite("Sharpness", value)
    width, height = img.size
    return _apply(img, lambda lib, src, dst, _, size: lib.fp_pil_sharpness(src, dst, width, height, size, value))


def color(img: PIL.Image.Image, value: float) -> PIL.Image.Image | None:
    """A new image: ``ImageEnhance.Color(img).enhance(value)`` (mode L or RGB), or None."""
    value = _finite("Color", value)
    return _apply(img, lambda lib, src, dst, pixels, size: lib.fp_pil_color(src, dst, pixels, size, value))


def equalize(img: PIL.Image.Image, value: float = 0.0, *, vector: bool = True) -> PIL.Image.Image | None:
    """A new image: ``ImageOps.equalize(img)`` (mode L or RGB; ``value`` unused), or None.
    ``vector``: the lookup 64 bytes at a time where the CPU can (:func:`.pil_pixels.lookup`)."""
    vector = bool(vector)
    return _apply(img, lambda lib, src, dst, pixels, size: lib.fp_pil_equalize(src, dst, pixels, size, vector))


def autocontrast(img: PIL.Image.Image, value: float = 0.0, *, vector: bool = True) -> PIL.Image.Image | None:
    """A new image: ``ImageOps.autocontrast(img)`` (cutoff 0; mode L or RGB; ``value`` unused),
    or None. ``vector`` as :func:`equalize`."""
    vector = bool(vector)
    return _apply(img, lambda lib, src, dst, pixels, size: lib.fp_pil_autocontrast(src, dst, pixels, size, vector))


def contrast(img: PIL.Image.Image, value: float, *, vector: bool = True) -> PIL.Image.Image | None:
    """A new image: ``ImageEnhance.Contrast(img).enhance(value)`` (mode L or RGB), or None.
    ``vector`` as :func:`equalize`."""
    value, vector = _finite("Contrast", value), bool(vector)
    return _apply(img, lambda lib, src, dst, pixels, size: lib.fp_pil_contrast(src, dst, pixels, size, value, vector))


__all__ = ["autocontrast", "color", "contrast", "equalize", "sharpness"]
