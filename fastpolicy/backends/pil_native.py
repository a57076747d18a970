"""Sharpness and Color on PIL images' own memory: the ``pil`` stage's native forms of the two
ops whose PIL operations are slowest per pixel (``ImageEnhance``: a filter or a grey
conversion, then a float blend, each a new image).

A small compiled library (``kernels/pil_ops.cpp``, the kernels' own pixel rules from
``kernels/common.cuh``) reads the image's memory as :mod:`.pil_pixels` exports it and writes a
new image's, in one pass. Each function returns None where that path does not apply (no
compiler, an image of another mode or in several memory blocks: :func:`.pil_pixels.memory`),
and the caller runs PIL's own operation: the same pixels, slower.
"""

from __future__ import annotations

import ctypes

import PIL.Image

from . import pil_pixels
from .kernel_build import HostLibrary

_OPTIONS = ("-std=c++17", "-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fopenmp-simd")


def _declare(library) -> None:
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    library.fp_pil_sharpness.argtypes = [pointer, pointer, integer, integer, integer, ctypes.c_float]
    library.fp_pil_color.argtypes = [pointer, pointer, ctypes.c_int64, integer, ctypes.c_float]
    for function in (library.fp_pil_sharpness, library.fp_pil_color):
        function.restype = None


_HELPER = HostLibrary(
    "pil_ops.cpp",
    _OPTIONS,
    "pil_ops",
    _declare,
    "the native Sharpness and Color of the pil stage",
    "PIL's own operations run instead (the same pixels, slower)",
    quiet_without_compiler=True,  # a machine without a compiler is supported: PIL's own, silently
)


def _pair(img: PIL.Image.Image):
    """``(library, source memory, new image, its memory)``, or None where this path does not apply."""
    library = _HELPER.get()
    source = None if library is None else pil_pixels.memory(img)
    if source is None:
        return None
    out = PIL.Image.new(img.mode, img.size)
    target = pil_pixels.memory(out)
    return None if target is None else (library, source, out, target)


def sharpness(img: PIL.Image.Image, value: float) -> PIL.Image.Image | None:
    """A new image: ``ImageEnhance.Sharpness(img).enhance(value)`` (mode L or RGB), or None."""
    pair = _pair(img)
    if pair is None:
        return None
    library, source, out, target = pair
    width, height = img.size
    library.fp_pil_sharpness(source[1], target[1], width, height, pil_pixels.BYTES[img.mode], value)
    return out


def color(img: PIL.Image.Image, value: float) -> PIL.Image.Image | None:
    """A new image: ``ImageEnhance.Color(img).enhance(value)`` (mode L or RGB), or None."""
    pair = _pair(img)
    if pair is None:
        return None
    library, source, out, target = pair
    width, height = img.size
    library.fp_pil_color(source[1], target[1], width * height, pil_pixels.BYTES[img.mode], value)
    return out


__all__ = ["color", "sharpness"]
