"""Two op slots composed pixel by pixel in one launch (``fp_policy``, ``kernels/fused.cu``).

Every family pair — geometric→geometric (a double gather), geometric→pointwise (the table
maps the fill too), pointwise→histogram (statistics of the first op's output, taken inside
the block), geometric→Sharpness (the warp at 9 neighbours), and the reverse orders — on
every host build, fused and slot by slot, equals the NumPy reference pixel for pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import photo_batch

from fastpolicy import OPS, reference, spaces
from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.backends.protocol import normalization
from fastpolicy.sampling import complete

PAIRS = [
    ("Rotate", "ShearY"),
    ("TranslateX", "Rotate"),
    ("ShearX", "TranslateY"),
    ("Rotate", "Solarize"),
    ("TranslateY", "Posterize"),
    ("Posterize", "Rotate"),
    ("Posterize", "Equalize"),
    ("Solarize", "AutoContrast"),
    ("Invert", "Contrast"),
    ("Rotate", "Equalize"),
    ("Equalize", "AutoContrast"),
    ("Rotate", "Sharpness"),
    ("TranslateX", "Sharpness"),
    ("Sharpness", "Rotate"),
    ("ShearX", "Color"),
    ("Rotate", "Cutout"),
    ("Cutout", "Equalize"),
    ("Rotate", "SamplePairing"),
]


@pytest.fixture(
    scope="module", params=["emulated-fused", "emulated-slots", "native-fused", "native-slots", "emulated-fused-37"]
)
def stage(request):
    build, mode, *threads = request.param.split("-")
    if threads:  # blocks of 37 threads: every block-wide loop and reduction at an odd block size
        from fastpolicy.backends.kernel_build import emulated_module

        return KernelPolicyStage(emulated_module(), np, threads_per_block=int(threads[0]), fused=True)
    maker = KernelPolicyStage.emulated if build == "emulated" else KernelPolicyStage.native
    return maker(fused=mode == "fused")


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize(("first", "second"), PAIRS, ids=["-".join(p) for p in PAIRS])
def test_two_slots_of_every_family_pair_equal_the_reference(stage, first, second, grey):
    images = photo_batch(6, 29, 41, grey)
    op = np.tile([OPS[first].id, OPS[second].id], (6, 1))
    bins = np.random.default_rng(5).integers(3, 10, (6, 2))
    params = complete(op, bins, spaces.adversarial(), np.random.default_rng(7))
    want = reference.apply_batch(images, params)
    for poison in (0, 255):  # a pixel no thread writes fails whatever its reference value
        got = stage.apply(images, params, out=np.full(images.shape, poison, np.uint8))
        np.testing.assert_array_equal(got, want)


def test_fused_launches_and_normalized_planar_output():
    """One launch for two slots; the fused store writes float NCHW like the slot-by-slot one."""
    images = photo_batch(4, 23, 31)
    op = np.tile([OPS["Rotate"].id, OPS["Equalize"].id], (4, 1))
    params = complete(op, np.full((4, 2), 8), spaces.adversarial(), np.random.default_rng(1))
    mean, inv_std = normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    fused, slots = KernelPolicyStage.emulated(fused=True), KernelPolicyStage.emulated(fused=False)
    a = fused.apply(images, params, output="float32", mean=mean, inv_std=inv_std)
    b = slots.apply(images, params, output="float32", mean=mean, inv_std=inv_std)
    np.testing.assert_array_equal(a, b)
    assert fused.launches == 1 and slots.launches == 2 + 4  # rotate: apply; equalize: zero, hist, luts, apply
