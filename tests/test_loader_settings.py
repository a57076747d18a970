"""The loader's grouped settings and its size checks: every bad value is refused at construction
with a ValueError naming it (and its limits), before DALI sees it."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch

pytest.importorskip("nvidia.dali")
from fastpolicy.loader import Augment, FileChecks, Output, Pipeline, PolicyDALILoader, Sharding
from fastpolicy.loader.settings import MAX_BATCH_BYTES, MAX_IMAGE_SIZE, check_sizes, output_of


def _refused_quickly(make, match: str, seconds: float = 60) -> None:
    """``make()`` raises ValueError matching ``match`` within ``seconds`` (a negative size
    used to spin forever inside DALI)."""
    outcome: dict = {}

    def run():
        try:
            make()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    assert isinstance(outcome.get("error"), ValueError), outcome
    assert re.search(match, str(outcome["error"])), str(outcome["error"])


@pytest.mark.parametrize(
    ("image_size", "match"),
    [
        (0, r"image height \(image_size\) must be in \[1, 8192\], got 0"),
        (-5, r"image height \(image_size\) must be in \[1, 8192\], got -5"),
        (10**6, r"must be in \[1, 8192\], got 1000000"),
        (32.5, r"image height \(image_size\) must be an integer, got 32.5"),
        (True, r"must be an integer, got True"),
        ("32", r"must be an integer, got '32'"),
    ],
)
def test_bad_image_sizes_are_refused(photo_tree, image_size, match):
    _refused_quickly(lambda: PolicyDALILoader(photo_tree, batch_size=2, M=1, image_size=image_size), match)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, r"batch_size must be ≥ 1, got 0"),
        ({"batch_size": 2.0}, r"batch_size must be an integer, got 2.0"),
        ({"M": 0}, r"M must be ≥ 1, got 0"),
        ({"M": -1}, r"M must be ≥ 1, got -1"),
        ({"M": 4096, "batch_size": 256, "image_size": 512}, r"over the limit of 8589934592"),
    ],
)
def test_bad_counts_are_refused(photo_tree, kwargs, match):
    settings = {"batch_size": 2, "M": 1, "image_size": 16} | kwargs
    _refused_quickly(lambda: PolicyDALILoader(photo_tree, **settings), match)


def test_check_sizes_limits():
    assert check_sizes(np.int64(4), 2, MAX_IMAGE_SIZE, 1, 3) == (4, 2)
    most = MAX_BATCH_BYTES // (MAX_IMAGE_SIZE**2 * 3)
    check_sizes(most, 1, MAX_IMAGE_SIZE, MAX_IMAGE_SIZE, 3)  # the most rows of the largest crops that fit
    with pytest.raises(ValueError, match="MAX_BATCH_BYTES"):
        check_sizes(most + 1, 1, MAX_IMAGE_SIZE, MAX_IMAGE_SIZE, 3)
    with pytest.raises(ValueError, match=r"image width \(image_size\) must be in \[1, 8192\], got 0"):
        check_sizes(1, 1, 4, 0, 3)


def test_arrays_of_no_size_are_refused():
    with pytest.raises(ValueError, match=r"height and width ≥ 1, got shape \(8, 0, 4, 1\)"):
        PolicyDALILoader.from_arrays(np.zeros((8, 0, 4), np.uint8), np.zeros(8, np.int64), batch_size=2)
    with pytest.raises(ValueError, match=r"image width \(image_size\) must be in \[1, 8192\], got 9000"):
        PolicyDALILoader.from_arrays(np.zeros((2, 4, 9000), np.uint8), np.zeros(2, np.int64), batch_size=2)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Sharding(2, 2), r"shard_id 2 outside \[0, 2\)"),
        (lambda: Sharding(0, 0), r"num_shards must be ≥ 1, got 0"),
        (lambda: Sharding(-1, 2), r"shard_id must be ≥ 0, got -1"),
        (lambda: Augment(baseline="random"), r"baseline must be one of .*'random'"),
        (lambda: Augment(slots=0), r"slots must be in \[1, 16\], got 0"),
        (lambda: Augment(fill=256), r"fill must be an integer level in 0..255, got 256"),
        (lambda: Augment(magnitude_scale=0), r"magnitude_scale must be in \(0, 1\], got 0"),
        (lambda: Augment(magnitude_scale=True), r"magnitude_scale must be in \(0, 1\], got True"),
        (lambda: Augment(cutout=-1), r"cutout must be a side in pixels ≥ 0, got -1"),
        (lambda: Augment(cutout=4.5), r"cutout must be a side in pixels ≥ 0, got 4.5"),
        (lambda: FileChecks(verify="full"), r"verify must be one of .*'full'"),
        (lambda: FileChecks(on_bad="ignore"), r"on_bad must be one of .*'ignore'"),
        (lambda: FileChecks(max_pixels=0), r"max_pixels must be ≥ 1, got 0"),
        (lambda: Pipeline(seed=-1), r"seed must be in \[0, 9007199254740992\], got -1"),
        (lambda: Pipeline(seed=2**60), r"seed must be in \[0, 9007199254740992\], got 1152921504606846976"),
        (lambda: Pipeline(num_threads=0), r"num_threads must be ≥ 1, got 0"),
        (lambda: Pipeline(prefetch=2), r"prefetch must be 0, 1 or None \(auto\), got 2"),
        (lambda: Pipeline(prefetch=True), r"prefetch must be 0, 1 or None \(auto\), got True"),
        (
            lambda: Pipeline(dali_priority="low"),
            r"dali_priority must be one of \('idle', 'normal'\) or None, got 'low'",
        ),
        (lambda: Pipeline(dali_priority=0), r"dali_priority must be one of \('idle', 'normal'\) or None, got 0"),
        (lambda: Pipeline(shuffle="yes"), r"shuffle must be True or False, got 'yes'"),
        (lambda: Output(dtype="int8"), r"output must be one of .*'int8'"),
        (lambda: Output(layout="nhwc"), r"layout must be one of .*'nhwc'"),
        (lambda: Output(mean=(0.5,)), r"give both mean and std or neither"),
    ],
)
def test_settings_refuse_bad_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_settings_are_frozen_and_keep_good_values():
    augment = Augment(baseline="center", slots=3, fill=0, magnitude_scale=0.5, cutout=16, backend="native")
    with pytest.raises(AttributeError):
        augment.cutout = 8  # type: ignore[misc]
    assert Sharding(1, 3).size(10) == 3 and sum(Sharding(i, 3).size(10) for i in range(3)) == 10
    assert augment.final_slots(32)[0].value == 0.5 and Augment().final_slots(32) == ()
    assert Output(mean=[0.5], std=[0.25]).mean == (0.5,)


def test_output_and_layout_arguments():
    assert output_of("bfloat16", "channels_last") == Output("bfloat16", "channels_last")
    assert output_of("uint8", None) == Output("uint8", "nchw")
    given = Output("float16", "channels_last", (0.5,), (0.25,))
    assert output_of(given, None) is given and output_of(given, "channels_last") is given
    with pytest.raises(ValueError, match="disagrees"):
        output_of(given, "nchw")
    spec = Output("float", "nchw").spec(1)  # ImageNet's statistics, averaged for one channel
    assert spec.dtype == "float32" and len(spec.mean) == 1
    assert Output("uint8").spec(3).mean is None
    with pytest.raises(ValueError, match="need 3 values"):
        Output(mean=(0.5,), std=(0.5,)).spec(3)


def test_readme_call_keeps_working(photo_tree):
    loader = PolicyDALILoader(
        photo_tree, batch_size=4, M=2, image_size=24, policies="autoaugment", output="bfloat16", layout="channels_last"
    )
    batch = next(iter(loader))
    assert batch.images.shape == (8, 3, 24, 24) and batch.images.dtype == torch.bfloat16
    assert batch.images.is_contiguous(memory_format=torch.channels_last)
    assert loader.files is not None and len(loader.files) == 20


@pytest.mark.parametrize("data", [None, 42, {"train": "x"}])
def test_data_of_the_wrong_kind_is_named(data):
    from fastpolicy import PolicyDALILoader

    with pytest.raises(TypeError, match=f"data must be a dataset folder.*got {type(data).__name__}"):
        PolicyDALILoader(data, batch_size=4, M=1, device="cpu")
