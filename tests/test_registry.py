"""The registry is the single list of ops: spaces, mappings and the oracle derive from it."""

import numpy as np
import pytest
from pil_oracle import ORACLE

import fastpolicy
from fastpolicy.registry import KINDS, OP_NAMES, OPS, get_op, op_by_id, register_backend
from fastpolicy.spaces import AWS_BINS, adversarial, aws, get_space

ADVAA_OPS = {
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "AutoContrast",
    "Invert",
    "Equalize",
    "Solarize",
    "Posterize",
    "Contrast",
    "Color",
    "Brightness",
    "Sharpness",
    "Cutout",
    "SamplePairing",
}


def test_registry_holds_the_16_advaa_ops_first_then_timms():
    assert set(OP_NAMES[:16]) == ADVAA_OPS and OP_NAMES[16:] == ("SolarizeAdd", "GaussianBlur")
    assert fastpolicy.OPS is OPS
    for i, name in enumerate(OP_NAMES):
        assert OPS[name].id == i and op_by_id(i).name == name
        assert OPS[name].kind in KINDS and callable(OPS[name].reference)


def test_unknown_op_error_lists_known_names():
    with pytest.raises(KeyError, match="unknown op 'Shear'.*ShearX"):
        get_op("Shear")
    with pytest.raises(IndexError):
        op_by_id(len(OP_NAMES))


def test_pil_oracle_covers_exactly_the_registry():
    assert set(ORACLE) == set(OPS)


def test_adversarial_space_is_every_op_by_ten_bins():
    space = adversarial()
    assert set(space.ops) == ADVAA_OPS and space.n_bins == 10
    assert len(space.elements) == 160


def test_aws_space_has_36_elements_from_the_registry():
    space = aws()
    assert len(space.elements) == 36
    assert set(space.ops) == ADVAA_OPS - {"Cutout", "SamplePairing"}
    without = [el.op for el in space.elements if el.bin is None]
    assert without == ["AutoContrast", "Invert", "Equalize"]
    for op in space.ops:
        bins = [el.bin for el in space.elements if el.op == op]
        assert bins == ([None] if space.magnitude(op) is None else list(AWS_BINS))
    assert len({el.name for el in space.elements}) == 36


@pytest.mark.parametrize(
    "op, bins_values",
    [
        ("ShearX", [0.1, 0.2, 0.3]),
        ("TranslateY", [0.151, 0.302, 0.453]),
        ("Rotate", [10, 20, 30]),
        ("Posterize", [7, 5, 4]),
        ("Solarize", [512 / 3, 256 / 3, 0]),  # 170.7, 85.3, 0
    ],
)
def test_aws_magnitudes_at_bins_3_6_9(op, bins_values):
    magnitude = aws().magnitude(op)
    got = [magnitude.value(b, 1) for b in AWS_BINS]
    np.testing.assert_allclose(got, bins_values, atol=6e-4)


@pytest.mark.parametrize("op", ["Contrast", "Color", "Brightness", "Sharpness"])
def test_enhance_ranges_per_space(op):
    aws_m, adv_m = aws().magnitude(op), adversarial().magnitude(op)
    np.testing.assert_allclose([aws_m.value(b, s) for b in AWS_BINS for s in (-1, 1)], [0.7, 1.3, 0.4, 1.6, 0.1, 1.9])
    assert not adv_m.signed
    np.testing.assert_allclose([adv_m.value(0), adv_m.value(9)], [0.1, 1.9])


@pytest.mark.parametrize(
    "op, ends",
    [
        ("ShearX", (0.0, 0.3)),
        ("TranslateX", (0.0, 150 / 331)),
        ("Rotate", (0.0, 30.0)),
        ("Solarize", (256.0, 0.0)),
        ("Posterize", (8.0, 4.0)),
        ("Cutout", (0.0, 0.2)),
        ("SamplePairing", (0.0, 0.4)),
    ],
)
def test_advaa_magnitude_ranges(op, ends):
    magnitude = adversarial().magnitude(op)
    assert (magnitude.value(0), magnitude.value(9)) == pytest.approx(ends)


def test_signs_only_where_the_op_has_one():
    signed = {name for name, spec in OPS.items() if spec.signed}
    assert signed == {
        "ShearX",
        "ShearY",
        "TranslateX",
        "TranslateY",
        "Rotate",
        "Contrast",
        "Color",
        "Brightness",
        "Sharpness",
    }
    assert adversarial().magnitude("ShearX").value(5, -1) == -adversarial().magnitude("ShearX").value(5, 1)


def test_space_value_uses_the_space_bins():
    # A 31-bin space reaches the end of its range at bin 30, a 10-bin one at bin 9.
    assert get_space("randaugment").value("Rotate", 30) == pytest.approx(30.0)
    assert get_space("randaugment").value("Rotate", 15, -1) == pytest.approx(-15.0)
    assert adversarial().value("Rotate", 9, -1) == pytest.approx(-30.0)
    assert aws().value("Invert", 5) == 0.0
    with pytest.raises(KeyError, match="not in the aws search space"):
        aws().value("Cutout", 3)


def test_bins_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="out of range"):
        adversarial().magnitude("Rotate").value(10)
    with pytest.raises(ValueError, match="out of range"):
        adversarial().check_bin("Rotate", -1)
    with pytest.raises(KeyError, match="not in the aws search space"):
        aws().magnitude("Cutout")
    with pytest.raises(ValueError, match="unknown search space"):
        get_space("random")


def test_stats_flags():
    assert {n: s.stats for n, s in OPS.items() if s.stats} == {
        "AutoContrast": "minmax",
        "Equalize": "histogram",
        "Contrast": "mean",
    }
    assert {n: s.needs for n, s in OPS.items() if s.needs} == {"Cutout": "center", "SamplePairing": "partner"}


def test_register_backend_attaches_by_name():
    spec = OPS["Invert"]
    before = dict(spec.backends)
    try:
        spec.backends.pop("kernels", None)  # attached already if the kernels' module was imported

        @register_backend("kernels", "Invert")
        def fake(images, params):
            return images

        assert spec.backends["kernels"] is fake
    finally:
        spec.backends.clear()
        spec.backends.update(before)
    with pytest.raises(ValueError, match=r"unknown op implementation 'opencl'; known: \('dali', 'kernels'\)"):
        register_backend("opencl", "Invert")
    with pytest.raises(ValueError, match="unknown op implementation 'cupy'"):  # a stage backend, not an implementation
        register_backend("cupy", "Invert")
    with pytest.raises(KeyError, match="unknown op"):
        register_backend("dali", "Nope")


def test_readme_op_table_is_generated_from_the_registry():
    from pathlib import Path

    from fastpolicy.docs import render

    readme = (Path(__file__).resolve().parent.parent / "docs" / "ops.md").read_text(encoding="utf-8")
    assert render(readme) == readme, "docs/ops.md's op table is stale: run python -m fastpolicy.docs"
    for name in OPS:
        assert f"| {name} |" in readme


def test_a_second_registration_of_an_op_backend_raises():
    from fastpolicy.registry import OPS, register_backend

    spec = OPS["Invert"]
    before = dict(spec.backends)
    try:
        spec.backends.pop("dali", None)
        register_backend("dali", "Invert")(len)
        with pytest.raises(ValueError, match="already has a 'dali' implementation"):
            register_backend("dali", "Invert")(abs)
        register_backend("dali", "Invert")(len)  # the same function again is harmless
    finally:
        spec.backends.clear()
        spec.backends.update(before)


def test_python_dash_m_fastpolicy_runs_the_command_line():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "fastpolicy", "search", "adversarial", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "--controller-window" in done.stdout
