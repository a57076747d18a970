"""PIL images' pixels read and written in place: the fast half of :mod:`.pil_stage`.

Pillow (≥ 11.2) exports an image's own memory through the Arrow C data interface
(``Image.__arrow_c_array__``) without copying: an ``"L"`` image one byte per pixel, an
``"RGB"`` image four (R, G, B and a padding byte), rows back to back where the image is one
memory block. Over that memory a small compiled helper (``kernels/pil_pixels.cpp``) counts
levels, maps them through a table, and copies pixels to and from tensors — so a lookup-table op
costs one pass over the pixels instead of PIL's ``histogram`` and ``point`` calls, and a tensor
becomes an image without PIL's band merge and split.

No op is defined here: :mod:`.pil_stage` takes its tables from the reference
(:mod:`fastpolicy.reference.color`). Every function returns None where this path does not
apply — Pillow without the Arrow export, no C++ compiler, an image of another mode, one in
several memory blocks (PIL splits images over 16 MiB), one on memory PIL does not own
(``readonly``), an empty one, or rows padded to an alignment — and the caller then runs PIL's
own operation: the same pixels, slower.
"""

from __future__ import annotations

import ctypes

import numpy as np
import PIL.Image
import torch

from .kernel_build import HostLibrary

_SOURCE = "pil_pixels.cpp"
_OPTIONS = ("-std=c++17", "-O3", "-fPIC", "-shared")
BYTES = {"L": 1, "RGB": 4}
"""Bytes per pixel of the modes this path reads (PIL stores RGB with a padding byte)."""
BANDS = {"L": 1, "RGB": 3}
"""The modes this path reads, and their bands."""


class _ArrowArray(ctypes.Structure):
    """The Arrow C data interface's ``struct ArrowArray`` (a stable ABI)."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]

_CAPSULE = ctypes.pythonapi.PyCapsule_GetPointer
_CAPSULE.restype, _CAPSULE.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]


def _declare(library) -> None:
    size, pointer = ctypes.c_int64, ctypes.c_void_p
    library.fp_pixels_histogram.argtypes = [pointer, size, ctypes.c_int, ctypes.c_int, pointer]
    library.fp_pixels_lut.argtypes = [pointer, pointer, size, ctypes.c_int, ctypes.c_int, pointer, ctypes.c_int]
    library.fp_pixels_lut_vectorized.argtypes, library.fp_pixels_lut_vectorized.restype = [], ctypes.c_int
    library.fp_pixels_copy.argtypes = [pointer, size, size, pointer, size, size, size, ctypes.c_int, ctypes.c_int]
    for function in (library.fp_pixels_histogram, library.fp_pixels_lut, library.fp_pixels_copy):
        function.restype = None


_HELPER = HostLibrary(
    _SOURCE,
    _OPTIONS,
    "pil_pixels",
    _declare,
    "the PIL pixel helper",
    "PIL's own operations run instead (the same pixels, slower)",
    quiet_without_compiler=True,  # a machine without a compiler is supported: PIL's own, silently
)


def _library():
    """The built helper (ctypes CDLL), or None: no compiler, or a failed build (one
    ``RuntimeWarning`` per process)."""
    return _HELPER.get()


def memory(img: PIL.Image.Image):
    """``(keep, address)`` of ``img``'s pixels (L or RGB, one block, rows back to back), or None.
    ``keep`` holds the export: the address is valid while it lives. Images on memory PIL does
    not own (``readonly``: mapped files, ``frombuffer``, 2-D ``fromarray``; some Pillow versions
    export those through a NULL block), empty images, and rows padded to an alignment
    (``PILLOW_ALIGNMENT``) are left to PIL."""
    export = getattr(img, "__arrow_c_array__", None)
    if export is None or img.mode not in BYTES or img.readonly or 0 in img.size or _alignment() != 1:
        return None
    try:
        _, array = export()
    except ValueError:  # "Image rows are not contiguous in memory": several blocks
        return None
    struct = _ArrowArray.from_address(_CAPSULE(array, b"arrow_array"))
    data = struct.children[0].contents if struct.n_children else struct
    width, height = img.size
    size = width * height * (BYTES[img.mode] if struct.n_children else 1)
    if data.offset or data.n_buffers < 2 or data.length != size or not data.buffers[1]:
        return None  # not the layout this module reads (a future Pillow's): PIL's own operations
    return array, data.buffers[1]


def _alignment() -> int:
    """Pillow's row alignment in bytes (1: rows back to back; Pillow before 11 has no setting)."""
    get = getattr(PIL.Image.core, "get_alignment", None)
    return 1 if get is None else get()


def histogram(img: PIL.Image.Image) -> np.ndarray | None:
    """int64 [bands, 256]: ``img``'s levels per band (``img.histogram()``), or None."""
    library = _library()
    source = None if library is None else memory(img)
    if library is None or source is None:
        return None
    bands = BANDS[img.mode]
    out = np.empty((bands, 256), np.int64)
    library.fp_pixels_histogram(source[1], img.size[0] * img.size[1], BYTES[img.mode], bands, out.ctypes.data)
    return out


def vector_lookup() -> bool:
    """Whether :func:`lookup` maps 64 bytes at a time on this CPU (AVX-512 VBMI; False also
    without the helper)."""
    library = _library()
    return library is not None and bool(library.fp_pixels_lut_vectorized())


def lookup(img: PIL.Image.Image, table: np.ndarray, *, vector: bool = True) -> PIL.Image.Image | None:
    """A new image: ``img``'s band c mapped through ``table[c]`` (uint8 [bands, 256]), as
    ``img.point(table)``; or None. ``vector``: where the CPU has AVX-512 VBMI, 64 bytes at a
    time (False: byte by byte; the same bytes)."""
    library = _library()
    source = None if library is None else memory(img)
    if library is None or source is None:
        return None
    out = PIL.Image.new(img.mode, img.size)
    target = memory(out)
    if target is None:
        return None
    bands = BANDS[img.mode]
    table = np.ascontiguousarray(table, np.uint8)
    if table.shape != (bands, 256):
        raise ValueError(f"a {img.mode} image needs a uint8 [{bands}, 256] table, got {table.shape}")
    pixels = img.size[0] * img.size[1]
    library.fp_pixels_lut(source[1], target[1], pixels, BYTES[img.mode], bands, table.ctypes.data, int(vector))
    return out


def _image_from(address: int, pixel: int, channel: int, height: int, width: int, channels: int):
    """A new PIL image (L or RGB) of the uint8 pixels at ``address`` (strides in bytes: a
    pixel's, a channel's; rows back to back), or None."""
    library = _library()
    if library is None or channels not in (1, 3):
        return None
    mode = "L" if channels == 1 else "RGB"
    out = PIL.Image.new(mode, (width, height))
    target = memory(out)
    if target is None:
        return None
    pad = 255 if channels == 3 else -1  # Pillow's own unpackers write 255 into RGB's padding byte
    library.fp_pixels_copy(address, pixel, channel, target[1], BYTES[mode], 1, height * width, channels, pad)
    return out


def _copy_out(img: PIL.Image.Image, address: int, pixel: int, channel: int, channels: int) -> bool:
    """Copy ``img`` (L or RGB, ``channels`` bands) to the uint8 pixels at ``address`` (strides
    as :func:`_image_from`); False (nothing written) where this path does not apply."""
    library = _library()
    source = None if library is None else memory(img)
    if library is None or source is None or channels != BANDS[img.mode]:
        return False
    library.fp_pixels_copy(
        source[1], BYTES[img.mode], 1, address, pixel, channel, img.size[0] * img.size[1], channels, -1
    )
    return True


def from_planes(image: torch.Tensor) -> PIL.Image.Image | None:
    """uint8 [C, H, W] (C = 1 or 3, CPU, any strides) as a new PIL image (L or RGB), or None."""
    channels, height, width = image.shape
    if image.dtype != torch.uint8 or image.device.type != "cpu":
        return None
    if height > 1 and image.stride(1) != width * image.stride(2):  # rows not back to back
        image = image.contiguous()
    return _image_from(image.data_ptr(), image.stride(2), image.stride(0), height, width, channels)


def to_planes(img: PIL.Image.Image, out: torch.Tensor) -> bool:
    """Copy ``img`` (L or RGB) into uint8 [C, H, W] ``out`` (CPU; rows back to back, planar or
    channels-last); False (nothing written) where this path does not apply."""
    channels, height, width = out.shape
    if out.dtype != torch.uint8 or out.device.type != "cpu" or (width, height) != img.size or img.mode not in BANDS:
        return False
    if height > 1 and out.stride(1) != width * out.stride(2):
        return False
    return _copy_out(img, out.data_ptr(), out.stride(2), out.stride(0), channels)


def to_array(img: PIL.Image.Image) -> np.ndarray | None:
    """``img`` (L or RGB) as a new uint8 [H, W, C] array (C = 1 or 3), or None."""
    if img.mode not in BANDS:
        return None
    width, height = img.size
    out = np.empty((height, width, BANDS[img.mode]), np.uint8)
    return out if _copy_out(img, out.ctypes.data, out.shape[2], 1, out.shape[2]) else None


def from_array(pixels: np.ndarray) -> PIL.Image.Image | None:
    """uint8 [H, W, C] (C = 1 or 3) as a new PIL image (L or RGB), or None."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        return None
    height, width, channels = pixels.shape
    if height > 1 and pixels.strides[0] != width * pixels.strides[1]:
        pixels = np.ascontiguousarray(pixels)
    return _image_from(pixels.ctypes.data, pixels.strides[1], pixels.strides[2], height, width, channels)


__all__ = [
    "BANDS",
    "BYTES",
    "from_array",
    "from_planes",
    "histogram",
    "lookup",
    "memory",
    "to_array",
    "to_planes",
    "vector_lookup",
]
