"""pytest-benchmark micro-benchmarks: every registry op through the NumPy reference and the DALI CPU stage.

Not part of the test suite (``testpaths = tests``). Run them with

    python -m pytest benchmarks/micro --benchmark-only                      # all ops, both paths
    python -m pytest benchmarks/micro --benchmark-only -k "Rotate or Equalize"
    python -m pytest benchmarks/micro --benchmark-only --benchmark-json=benchmarks/results/micro_cpu.json

Each case applies one op at its middle magnitude bin to a batch of 32 crops of real photos
at 224² (uint8 NHWC): the reference one image at a time (the specification, not fast),
the DALI stage as one batch.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastpolicy import OP_NAMES, OPS, reference, spaces
from fastpolicy.data.photo_tree import photo_batch
from fastpolicy.sampling import complete

BATCH, SIZE = 32, 224


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return photo_batch(BATCH, SIZE, SIZE)


def _params(name: str):
    """Op ``name`` at bin 5 in slot 0 of every sample."""
    rng = np.random.default_rng(OPS[name].id)
    op = np.full((BATCH, 2), -1)
    op[:, 0] = OPS[name].id
    return complete(op, np.full((BATCH, 2), 5), spaces.adversarial(), rng)


@pytest.mark.parametrize("name", OP_NAMES)
def test_reference(benchmark, images, name):
    params = _params(name)
    out = benchmark(reference.apply_batch, images, params)
    assert out.shape == images.shape


@pytest.fixture(scope="module")
def dali_stage():
    pytest.importorskip("nvidia.dali")
    from fastpolicy.backends.dali_stage import DaliPolicyStage

    return DaliPolicyStage(BATCH, SIZE, SIZE, num_threads=2)


@pytest.mark.parametrize("name", OP_NAMES)
def test_dali(benchmark, images, dali_stage, name):
    params = _params(name)

    def run():
        dali_stage.feed(images, params)
        return dali_stage.run()

    out = benchmark(run)
    assert len(out) == BATCH
