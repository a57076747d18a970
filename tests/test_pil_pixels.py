"""PIL images read and written in place (:mod:`fastpolicy.backends.pil_pixels`) and the PIL
stage's forms built on them: the same pixels as PIL's own operations and the reference, and
PIL's own operations wherever the in-place path does not apply."""

from __future__ import annotations

import ctypes
import threading

import numpy as np
import PIL.Image
import pytest
import torch

from fastpolicy.backends import pil_native, pil_pixels, pil_stage
from fastpolicy.backends.kernel_build import host_compiler
from fastpolicy.data.photo_tree import photo_batch
from fastpolicy.registry import OPS

needs_compiler = pytest.mark.skipif(
    host_compiler() is None or not hasattr(PIL.Image.Image, "__arrow_c_array__"),
    reason="no C++ compiler, or a Pillow without the Arrow export: the in-place path never runs",
)

_FAST = [name for name in pil_stage.PIL_OPS if OPS[name].kind == "lut" or name in pil_stage.NATIVE_FORMS]
"""The built-in ops whose PIL form is not PIL's own operation (read from the registry)."""

_VALUES = {
    "Solarize": [0.0, 26.0, 128.0, 256.0],
    "Posterize": [0.0, 1.0, 4.0, 8.0],
    "SolarizeAdd": [0.0, 50.0, 110.0],
    "Contrast": [0.1, 1.0, 1.9],
    "Brightness": [0.1, 1.9],
    "Sharpness": [0.1, 1.0, 1.9, 3.0, -0.7],
    "Color": [0.1, 0.55, 1.0, 1.9, 3.0, -0.7],
}


@pytest.fixture(scope="module")
def photos() -> list[PIL.Image.Image]:
    """Real photos, RGB and L, one of an odd size and one of a single grey level."""
    arrays = [*photo_batch(3, 61, 45), np.full((9, 7, 3), 77, np.uint8)]
    images = [PIL.Image.fromarray(a) for a in arrays]
    return [*images, *(image.convert("L") for image in images)]


@needs_compiler
def test_histogram_and_lookup_are_pils(photos):
    rng = np.random.default_rng(0)
    for image in photos:
        bands = len(image.getbands())
        assert pil_pixels.histogram(image).ravel().tolist() == image.histogram()
        table = rng.integers(0, 256, (bands, 256)).astype(np.uint8)
        out = pil_pixels.lookup(image, table)
        assert out.mode == image.mode and out.size == image.size
        assert np.array_equal(np.asarray(out), np.asarray(image.point(table.ravel().tolist())))
        with pytest.raises(ValueError, match=rf"uint8 \[{bands}, 256\] table, got \(2, 256\)"):
            pil_pixels.lookup(image, table[:1].repeat(2, 0))


@needs_compiler
def test_tensors_and_arrays_to_images_and_back(photos):
    """Planar, channels-last and cropped (strided) tensors; arrays; either direction."""
    for image in photos:
        pixels = np.asarray(image)
        hwc = pixels[..., None] if image.mode == "L" else pixels
        planar = torch.from_numpy(hwc.copy()).permute(2, 0, 1).contiguous()
        for tensor in (planar, torch.from_numpy(hwc.copy()).permute(2, 0, 1), planar[:, 1:, 2:]):
            made = pil_pixels.from_planes(tensor)
            assert made.mode == image.mode
            assert np.array_equal(np.asarray(made).reshape(*tensor.shape[1:], -1), tensor.permute(1, 2, 0).numpy())
        for out in (torch.empty_like(planar), torch.empty(hwc.shape, dtype=torch.uint8).permute(2, 0, 1)):
            assert pil_pixels.to_planes(image, out)
            assert torch.equal(out, planar)
        assert np.array_equal(pil_pixels.to_array(image), hwc)
        assert np.array_equal(np.asarray(pil_pixels.from_array(hwc)), pixels)
    rgb = pil_pixels.from_planes(torch.zeros(3, 2, 2, dtype=torch.uint8))
    _keep, address = pil_pixels.memory(rgb)  # _keep holds the export while the bytes are read
    stored = np.ctypeslib.as_array((ctypes.c_uint8 * 16).from_address(address))
    assert stored.tolist() == [0, 0, 0, 255] * 4  # the padding byte as Pillow's unpackers write it


def test_where_the_in_place_path_does_not_apply(photos, monkeypatch):
    """Other modes, other tensors, an image in several memory blocks (PIL's are 16 MiB), and no
    helper: None or False, nothing written."""
    rgb = photos[0]
    assert pil_pixels.histogram(rgb.convert("RGBA")) is None
    assert pil_pixels.lookup(rgb.convert("P"), np.zeros((1, 256), np.uint8)) is None
    assert pil_pixels.from_planes(torch.zeros(2, 4, 4, dtype=torch.uint8)) is None
    assert pil_pixels.from_planes(torch.zeros(3, 4, 4)) is None
    out = torch.zeros(1, rgb.size[1], rgb.size[0], dtype=torch.uint8)
    assert not pil_pixels.to_planes(rgb, out) and not out.any()  # bands disagree
    big = _several_blocks()
    assert pil_pixels.histogram(big) is None and pil_pixels.to_array(big) is None
    mapped = PIL.Image.fromarray(np.zeros((5, 4), np.uint8))  # on the array's memory: readonly
    assert mapped.readonly and pil_pixels.histogram(mapped) is None
    assert pil_pixels.histogram(PIL.Image.new("RGB", (0, 3))) is None
    monkeypatch.setattr(pil_pixels._HELPER, "loaded", [None])
    assert pil_pixels.histogram(rgb) is None and pil_pixels.lookup(rgb, np.zeros((3, 256), np.uint8)) is None
    assert pil_pixels.from_planes(torch.zeros(3, 4, 4, dtype=torch.uint8)) is None


def _several_blocks() -> PIL.Image.Image:
    """An RGB image larger than one of PIL's memory blocks (PIL splits it over several)."""
    side = int((PIL.Image.core.get_block_size() // 4) ** 0.5) + 2
    return PIL.Image.new("RGB", (side, side), (9, 200, 31))


def _check_forms(images, names) -> None:
    """Each op's PIL stage form equals its reference and PIL's own operation."""
    stage = pil_stage.PilStage()
    for image in images:
        pixels = np.asarray(image)
        pixels = pixels[..., None] if image.mode == "L" else pixels
        for name in names:
            for value in _VALUES.get(name, [0.0]):
                out = stage.apply_ops(image, [pil_stage.Op(OPS[name].id, value, 0.5, 0.5, 0)])
                assert out.mode == image.mode, name
                expected = OPS[name].reference(pixels, value)
                assert np.array_equal(np.asarray(out).reshape(expected.shape), expected), (name, value, image.mode)
                own = pil_stage.PIL_OPS[name](image, value)
                assert np.array_equal(np.asarray(own), np.asarray(out)), (name, value, image.mode)


@needs_compiler
def test_the_pil_stages_table_and_native_forms_are_exact(photos, monkeypatch):
    """Every table op and native op, on photos (RGB, L), a constant image, tiny ones (one row,
    2×2, 3×3), and the in-place path taken: the table ops through pil_pixels.lookup, the native
    ops through pil_native (counted)."""
    assert {"AutoContrast", "Equalize", "Contrast", "Brightness", "Sharpness", "Color"} <= set(_FAST)
    made: list = []
    forms = [(pil_pixels, "lookup"), *((pil_native, name) for name in pil_native.__all__)]
    for module, name in forms:
        monkeypatch.setattr(module, name, _counted(getattr(module, name), made, name))
    natives = {op: getattr(pil_native, form.__name__) for op, form in pil_stage.NATIVE_FORMS.items()}
    monkeypatch.setattr(pil_stage, "NATIVE_FORMS", natives)
    pil_stage._read_registry()
    tiny = [PIL.Image.fromarray(a) for a in (photo_batch(1, 1, 9)[0], photo_batch(1, 2, 2)[0], photo_batch(1, 3, 3)[0])]
    try:
        _check_forms([*photos, *tiny, *(image.convert("L") for image in tiny)], _FAST)
    finally:
        monkeypatch.undo()
        pil_stage._read_registry()
    done = {name for name, result in made if result is not None}
    assert done == {"lookup", *pil_native.__all__}


def _counted(function, made: list, name: str):
    def call(*args, **kwargs):
        result = function(*args, **kwargs)
        made.append((name, result))
        return result

    return call


def test_where_the_forms_fall_back_to_pils_own(photos):
    """Several memory blocks, mapped memory, padded rows: PIL's own operations, the same pixels."""
    mapped = PIL.Image.fromarray(np.asarray(photos[4]).copy())  # 2-D: on the array's memory
    assert mapped.readonly
    _check_forms([_several_blocks(), mapped], ["Equalize", "Contrast", "Sharpness", "Color", "Invert"])
    before = PIL.Image.core.get_alignment()
    try:
        PIL.Image.core.set_alignment(16)
        padded = photos[0].copy()  # rows start on 16-byte boundaries: not back to back
        assert pil_pixels.histogram(padded) is None
        _check_forms([padded], ["Equalize", "Solarize"])
    finally:
        PIL.Image.core.set_alignment(before)


@needs_compiler
def test_native_launches_from_several_threads_at_once(photos):
    """The host build's launch geometry is per thread: the native stage's batches and the PIL
    stage's Sharpness (its compiled form), run from four threads together, equal the same calls
    one at a time."""
    from fastpolicy.backends.kernel_stage import KernelPolicyStage
    from fastpolicy.policies import resolve
    from fastpolicy.sampling import sample_policies

    stage, pil = KernelPolicyStage.native(), pil_stage.PilStage()
    batches = [photo_batch(n, 24, 20) for n in (1, 3, 7, 12)]
    policy = resolve("autoaugment")
    params = [sample_policies([policy], len(b), np.random.default_rng(i), slots=2) for i, b in enumerate(batches)]
    sharpen = [pil_stage.Op(OPS["Sharpness"].id, 1.7, 0.5, 0.5, 0)]
    alone = [stage.apply(b, p) for b, p in zip(batches, params)]
    sharp = np.asarray(pil.apply_ops(photos[0], sharpen))
    failures: list = []

    def work(i: int) -> None:
        for _ in range(20):
            if not np.array_equal(stage.apply(batches[i], params[i]), alone[i]):
                failures.append(("batch", i))
            if not np.array_equal(np.asarray(pil.apply_ops(photos[0], sharpen)), sharp):
                failures.append(("sharpness", i))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_the_pil_stages_forms_without_the_helper_or_the_native_stage(photos, monkeypatch):
    """PIL's own operations run instead: the same pixels."""
    monkeypatch.setattr(pil_pixels._HELPER, "loaded", [None])
    monkeypatch.setattr(pil_native._HELPER, "loaded", [None])
    _check_forms(photos[:2] + photos[-2:], _FAST)


def test_kept_tables_are_per_value_and_mode(photos):
    """A value-only table is kept per (value, mode): an L image after an RGB one at the same
    value gets its own one-band table."""
    stage = pil_stage.PilStage()
    invert = [pil_stage.Op(OPS["Solarize"].id, 100.0, 0.5, 0.5, 0)]
    for image in (photos[0], photos[4], photos[0]):
        pixels = np.asarray(image)
        assert np.array_equal(np.asarray(stage.apply_ops(image, invert)), np.where(pixels < 100, pixels, 255 - pixels))
