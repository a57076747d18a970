"""The pil stage's compiled forms (:mod:`fastpolicy.backends.pil_native`: Sharpness, Color,
Equalize, AutoContrast, Contrast; :mod:`fastpolicy.backends.pil_pixels`: the vector table
lookup) against the reference and PIL, and the arithmetic they rest on. The forms as the stage
runs them, on photos, tiny images and the fallbacks: tests/test_pil_pixels.py."""

from __future__ import annotations

import platform
import shlex
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from fastpolicy.backends import pil_native, pil_pixels, pil_stage
from fastpolicy.backends.kernel_build import host_compiler, host_compiler_command
from fastpolicy.data.photo_tree import photo_batch
from fastpolicy.reference import color
from fastpolicy.registry import OPS

pytestmark = pytest.mark.skipif(
    host_compiler() is None or not hasattr(PIL.Image.Image, "__arrow_c_array__"),
    reason="no C++ compiler, or a Pillow without the Arrow export: the compiled forms never run",
)


def _images() -> list[PIL.Image.Image]:
    """Photos (RGB and L), noise (every level next to every other), a constant image, one of a
    single level per band (not the same level), odd and tiny sizes (wide and tall), and one past
    2^16 pixels (the grey sum's partial sums)."""
    rng = np.random.default_rng(7)
    arrays = [
        *photo_batch(2, 61, 45),
        photo_batch(1, 300, 301)[0],
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        np.full((9, 7, 3), 255, np.uint8),
        np.broadcast_to(np.array([3, 200, 77], np.uint8), (6, 11, 3)).copy(),
        photo_batch(1, 3, 3)[0],
        photo_batch(1, 2, 5)[0],
        photo_batch(1, 5, 2)[0],
        photo_batch(1, 4, 1)[0],
        photo_batch(1, 1, 1)[0],
    ]
    rgb = [PIL.Image.fromarray(a) for a in arrays]
    return [*rgb, *(image.convert("L") for image in rgb)]


def _every_sum() -> np.ndarray:
    """uint8 [3, 3·3316, 1]: side by side, a 3×3 tile per weighted sum s = 0 … 13·255 of the
    SMOOTH kernel (1 around, 5 in the centre): centre about s // 13, the rest spread over the eight
    neighbours in a shuffled order."""
    rng = np.random.default_rng(5)
    tiles = []
    for total in range(13 * 255 + 1):
        centre = max(total // 13, -(-(total - 8 * 255) // 5))  # the neighbours hold at most 8·255
        rest = total - 5 * centre
        around = np.full(8, rest // 8) + (np.arange(8) < rest % 8)
        rng.shuffle(around)
        tiles.append(np.insert(around, 4, centre).reshape(3, 3))
    return np.concatenate(tiles, axis=1).astype(np.uint8)[..., None]


def test_the_smoothed_level_is_the_integer_quotient_of_the_float32_filter():
    """kernels/pil_ops.cpp's fp_smooth_level: (2·sum + 13) // 26 of the SMOOTH kernel's weighted
    sum, against the reference's float32 filter: at every sum from 0 to 13·255 (a tile each),
    over noise, and on the constant images of every level."""
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (400, 400, 1), dtype=np.uint8)
    levels = np.repeat(np.arange(256, dtype=np.uint8), 9).reshape(256, 3, 3, 1)
    every = _every_sum()
    for image in [every, noise, *levels]:
        x = image[..., 0].astype(np.int64)
        weighted = sum(np.roll(np.roll(x, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) + 4 * x
        inner = weighted[1:-1, 1:-1]
        assert np.array_equal(color.smooth(image)[1:-1, 1:-1, 0], (2 * inner + 13) // 26)
    assert _weighted_centres(every) == list(range(13 * 255 + 1))
    assert np.array_equal(  # and the compiled form itself, at every sum (value 0: the smoothed image)
        np.asarray(pil_native.sharpness(PIL.Image.fromarray(every[..., 0]).copy(), 0.0))[1, 1::3],
        (2 * np.array(_weighted_centres(every)) + 13) // 26,
    )


def _weighted_centres(tiles: np.ndarray) -> list[int]:
    x = tiles[..., 0].astype(np.int64)
    return [int(x[:, 3 * k : 3 * k + 3].sum() + 4 * x[1, 3 * k + 1]) for k in range(x.shape[1] // 3)]


_OP_NAMES = {form.__name__: op for op, form in pil_stage.NATIVE_FORMS.items()}
"""Each native form's op (the stage's own table)."""


def test_every_native_form_is_the_stages():
    assert sorted(_OP_NAMES) == sorted(pil_native.__all__)


@pytest.mark.parametrize("name", pil_native.__all__)
def test_the_native_forms_equal_pils_own_and_the_reference(name):
    """Every form on every image of :func:`_images`, at values in and past the ops' ranges; the
    table ops with the lookup 64 bytes at a time (where the CPU can) and byte by byte."""
    native = getattr(pil_native, name)
    for image in _images():
        pixels = np.asarray(image)
        pixels = pixels[..., None] if image.mode == "L" else pixels
        for value in (
            (0.0, 0.1, 0.55, 1.0, 1.3, 1.9, 3.0, -0.7) if name in ("sharpness", "color", "contrast") else (0.0,)
        ):
            expected = OPS[_OP_NAMES[name]].reference(pixels, value)
            own = pil_stage.PIL_OPS[_OP_NAMES[name]](image, value)  # PIL's own operation
            assert np.array_equal(np.asarray(own).reshape(expected.shape), expected)
            runs = [native(image, value)]
            if name not in ("sharpness", "color"):
                runs.append(native(image, value, vector=False))
            for out in runs:
                assert out is not None and out.mode == image.mode and out.size == image.size
                assert np.array_equal(np.asarray(out).reshape(expected.shape), expected), (name, image.size, value)


def test_the_native_forms_decline_what_they_cannot_read():
    """Memory PIL does not own, another mode: None (the stage then runs PIL's own)."""
    mapped = PIL.Image.fromarray(photo_batch(1, 8, 8)[0][..., 0])  # 2-D: on the array's memory
    assert mapped.readonly
    for native in (getattr(pil_native, name) for name in pil_native.__all__):
        assert native(mapped, 1.5) is None
        assert native(PIL.Image.new("RGBA", (4, 4)), 1.5) is None


def test_the_vector_lookup_equals_the_byte_loop_and_pils_point():
    """64 bytes at a time (where the CPU has AVX-512 VBMI) and byte by byte: the same bytes as
    ``img.point``, every size's tail included; tables whose entries differ between the halves
    (0-127, 128-255) and between bands."""
    rng = np.random.default_rng(11)
    for image in _images():
        bands = len(image.getbands())
        for table in (rng.integers(0, 256, (bands, 256)), 255 - np.tile(np.arange(256), (bands, 1))):
            table = table.astype(np.uint8)
            fast, slow = pil_pixels.lookup(image, table), pil_pixels.lookup(image, table, vector=False)
            expected = np.asarray(image.point(table.ravel().tolist()))
            assert np.array_equal(np.asarray(fast), expected) and np.array_equal(np.asarray(slow), expected)


def test_the_baseline_build_gives_the_same_pixels(monkeypatch):
    """Built without the instruction-set variants (``-DFP_PIL_BASELINE``, what a compiler
    without ``target_clones`` builds), every form gives the same pixels."""
    default = pil_native._HELPER.get()
    if default is None:
        pytest.skip("the compiled forms do not build here")
    monkeypatch.setenv("CXX", shlex.join([*host_compiler_command(), "-DFP_PIL_BASELINE"]))
    monkeypatch.setattr(pil_native._HELPER, "loaded", [])  # build again, with that command
    assert pil_native._HELPER.get()._name != default._name  # another library: the command is in its name
    images = [image for image in _images() if image.size[0] * image.size[1] < 20000]
    for name in pil_native.__all__:
        for image in images:
            pixels = np.asarray(image)
            pixels = pixels[..., None] if image.mode == "L" else pixels
            out = getattr(pil_native, name)(image, 1.3)
            assert out is not None, name
            expected = OPS[_OP_NAMES[name]].reference(pixels, 1.3)
            assert np.array_equal(np.asarray(out).reshape(expected.shape), expected), (name, image.size)


@pytest.mark.parametrize("name", ["sharpness", "color", "contrast"])
def test_blend_factors_far_out_clip_and_non_finite_ones_are_refused(name):
    """A factor so large that the blend's sum leaves the int range clips like the reference (0
    or 255), not as a C conversion would; inf and NaN are refused, naming the op."""
    native = getattr(pil_native, name)
    image = PIL.Image.fromarray(photo_batch(1, 20, 30)[0])
    pixels = np.asarray(image)
    for value in (1e9, -1e9, 3.4e38):
        with np.errstate(over="ignore", invalid="ignore"):
            expected = OPS[_OP_NAMES[name]].reference(pixels, value)
        assert np.array_equal(np.asarray(native(image, value)), expected), value
    for value in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(ValueError, match=rf"{_OP_NAMES[name]}'s value must be finite, got {value!r}"):
            native(image, value)


def test_the_vector_lookup_runs_where_the_cpu_has_avx512_vbmi():
    """:func:`pil_pixels.vector_lookup` says what ``/proc/cpuinfo`` says (Linux x86-64)."""
    info = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not info.is_file():
        pytest.skip("reads /proc/cpuinfo of an x86-64 Linux machine")
    flags = next(line for line in info.read_text().splitlines() if line.startswith("flags")).split()
    assert pil_pixels.vector_lookup() == ("avx512vbmi" in flags and "avx512bw" in flags)


def test_the_table_ops_take_the_lookup_where_only_the_forms_library_is_missing(monkeypatch):
    """pil_ops.cpp unavailable, pil_pixels.cpp there: Equalize, AutoContrast and Contrast map
    the reference's table over the image's memory (counted), the same pixels."""
    monkeypatch.setattr(pil_native._HELPER, "loaded", [None])
    made: list = []
    lookup = pil_pixels.lookup
    monkeypatch.setattr(pil_pixels, "lookup", lambda *a, **k: made.append(1) or lookup(*a, **k))
    stage = pil_stage.PilStage()
    image = PIL.Image.fromarray(photo_batch(1, 31, 17)[0])
    pixels = np.asarray(image)
    for op in ("Equalize", "AutoContrast", "Contrast", "Sharpness", "Color"):
        out = stage.apply_ops(image, [pil_stage.Op(OPS[op].id, 1.4, 0.5, 0.5, 0)])
        assert np.array_equal(np.asarray(out), OPS[op].reference(pixels, 1.4)), op
    assert len(made) == 3  # the three table ops; Sharpness and Color: PIL's own
