"""Shared fixtures: real photos (scikit-image, scikit-learn), the GPU marker's skip, and a clean
``fastpolicy`` logger for every test."""

from __future__ import annotations

import functools

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _fresh_fastpolicy_logger():
    """Each test starts with the library's logger as Python leaves it (level unset, propagating,
    no CLI handler, progress bars allowed); a test that ran the CLI (``log.setup``) must not
    change what the next one captures."""
    import logging

    from fastpolicy import log

    logger = logging.getLogger(log.LOGGER)
    saved = (logger.level, logger.propagate, list(logger.handlers), dict(log._bars))
    yield
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]
    log._bars.clear()
    log._bars.update(saved[3])


@functools.cache
def photos() -> dict[str, np.ndarray]:
    """Real photographs bundled with scikit-image and scikit-learn (uint8 HWC / HW)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    sample = load_sample_images().images
    return {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "china": sample[0],
        "flower": sample[1],
        "camera_grey": data.camera(),
    }


def crop(image: np.ndarray, height: int | None, width: int | None) -> np.ndarray:
    """Top-left crop (None: the whole image), as a contiguous array."""
    return np.ascontiguousarray(image if height is None else image[:height, :width])


def photo_batch(count: int, height: int, width: int, grey: bool = False) -> np.ndarray:
    """``count`` crops of real photos at varied offsets: uint8 [count, height, width, C],
    C = 1 (the grey camera photo) or 3 (the colour photos)."""
    from fastpolicy.data.photo_tree import photo_batch as crops

    sources = (
        [photos()["camera_grey"][..., None]] if grey else [p for name, p in photos().items() if name != "camera_grey"]
    )
    return crops(count, height, width, sources)


@functools.cache
def gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def photo_tree(tmp_path_factory) -> str:
    """A 5-class × 4-image ImageNet-layout JPEG tree of real photos (small sizes for speed)."""
    from fastpolicy.data.photo_tree import make_photo_tree

    root = str(tmp_path_factory.mktemp("tree"))
    make_photo_tree(root, classes=5, per_class=4, size=(160, 120))
    return root


def one_line_error(capsys, argv, *expected):
    """Run ``fastpolicy argv`` in this process; it must exit 2 with one stderr line containing ``expected``."""
    from fastpolicy.cli import main

    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def op_value(name: str, bin_: int, sign: int = 1) -> float:
    """A value of op ``name`` at ``bin_`` of the first space that gives it a magnitude (the
    adversarial space for the papers' ops); 0.0 for ops without one."""
    from fastpolicy.registry import OPS

    magnitude = next((m for m in OPS[name].magnitudes.values() if m is not None), None)
    return 0.0 if magnitude is None else magnitude.value(bin_, sign, 11 if "timm" in OPS[name].magnitudes else 10)
