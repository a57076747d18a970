"""Each op kind exposes what the batched backends consume: tables for ``lut`` ops, matrices for ``affine``."""

import numpy as np
import pytest
from conftest import crop, op_value, photos

from fastpolicy.reference import apply_value
from fastpolicy.reference.color import apply_lut
from fastpolicy.reference.geometry import warp
from fastpolicy.registry import OPS

LUT_OPS = [n for n, s in OPS.items() if s.kind == "lut"]
AFFINE_OPS = [n for n, s in OPS.items() if s.kind == "affine"]


def _value(name, bin_=7, sign=-1):
    return op_value(name, bin_, sign)


@pytest.mark.parametrize("name", LUT_OPS)
def test_lut_ops_are_a_per_channel_table(name):
    image = crop(photos()["china"], 70, 90)
    table = OPS[name].reference.lut(image, _value(name))
    assert table.shape == (3, 256) and table.dtype == np.uint8
    assert np.array_equal(apply_lut(image, table), apply_value(name, image, _value(name)))


@pytest.mark.parametrize("name", AFFINE_OPS)
def test_affine_ops_are_one_matrix(name):
    image = crop(photos()["astronaut"], 65, 83)
    matrix = OPS[name].reference.matrix(_value(name), 65, 83)
    assert len(matrix) == 6
    assert np.array_equal(warp(image, matrix), apply_value(name, image, _value(name)))


def test_every_op_has_a_kind_contract():
    import fastpolicy.backends.kernel_ops  # noqa: F401  (attaches the kernels' forms)

    for name, spec in OPS.items():
        if spec.kind == "lut":
            assert hasattr(spec.reference, "lut"), name
        elif spec.kind == "affine":
            assert hasattr(spec.reference, "matrix"), name
        elif spec.kind == "special":
            assert spec.needs in ("center", "partner"), name
        elif spec.kind == "filter":  # box passes the kernels run after the slot's apply
            assert spec.backends["kernels"].passes is not None, name
