"""The loader's parts on their own: dataset, prefetcher, resume state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nvidia.dali")
from fastpolicy.loader.dataset import ArrayDataset, FileDataset, open_dataset
from fastpolicy.loader.prefetch import Prefetcher, Prepared, Timings
from fastpolicy.loader.settings import FileChecks
from fastpolicy.loader.state import LoaderState


def test_array_dataset_checks_labels_and_fingerprint():
    images = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)
    dataset = ArrayDataset(images, np.array([3, 1, 2, 0]))
    assert dataset.images.shape == (4, 5, 6, 1) and dataset.shape == (5, 6) and dataset.channels == 1
    assert dataset.labels(np.array([2, 0])).tolist() == [2, 3] and dataset.labels(np.array([1])).dtype == np.int64
    fingerprint = dataset.fingerprint()
    assert fingerprint == ArrayDataset(images.copy(), np.array([3, 1, 2, 0])).fingerprint()
    assert fingerprint != ArrayDataset(images, np.array([3, 1, 2, 1])).fingerprint()
    assert fingerprint["kind"] == "arrays" and fingerprint["images"] == 4
    assert ArrayDataset.baseline(None) == "pad_crop" and ArrayDataset.baseline("none") == "none"
    with pytest.raises(TypeError, match="uint8"):
        ArrayDataset(images.astype(np.int16), np.zeros(4, int))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        ArrayDataset(np.zeros((4, 5, 6, 2), np.uint8), np.zeros(4, int))
    with pytest.raises(ValueError, match="non-negative integers"):
        ArrayDataset(images, np.array([0, -1, 0, 0]))


def test_file_dataset(photo_tree):
    dataset = open_dataset(photo_tree, FileChecks(), workers=2)
    assert isinstance(dataset, FileDataset) and len(dataset) == 20 and open_dataset(dataset, FileChecks(), 2) is dataset
    indices = np.array([19, 0])
    assert dataset.labels(indices).tolist() == dataset.images.labels[[19, 0]].tolist()
    assert dataset.fingerprint() == open_dataset(photo_tree, FileChecks(verify="none"), 2).fingerprint()
    assert FileDataset.baseline(None) == "imagenet"
    with pytest.raises(ValueError, match="in-memory arrays"):
        FileDataset.baseline("pad_crop")
    with pytest.raises(FileNotFoundError, match="neither a dataset folder nor a file list"):
        open_dataset("/no/such/folder", FileChecks(), 2)


def _prepared(version: int) -> Prepared:
    zeros = torch.zeros(2, 1, 1, 1, 1, dtype=torch.uint8)
    ids = torch.zeros(2, dtype=torch.int64)
    return Prepared(zeros, torch.zeros(2, 1, 1, 1), ids, ids.clone(), np.arange(2), 2, None, version)


def test_prefetcher_reaugments_only_a_stale_batch():
    timings = Timings()
    prefetcher = Prefetcher("cpu", timings)
    assert prefetcher.take(1, lambda p: None) is None  # nothing made ahead

    def reaugment(prepared):
        prepared.version = 2

    prefetcher.ahead(lambda: _prepared(2))
    assert prefetcher.wait() is not None and prefetcher.pending is not None  # waiting leaves it pending
    assert prefetcher.take(2, reaugment).version == 2 and "reaugment" not in timings.seconds
    prefetcher.ahead(lambda: _prepared(1))
    assert prefetcher.take(2, reaugment).version == 2 and timings.seconds["reaugment"] >= 0
    prefetcher.ahead(lambda: _prepared(1))
    prefetcher.close()  # finished and kept
    assert prefetcher.settle() is not None and prefetcher.settle() is None
    prefetcher.ahead(lambda: _prepared(3))  # a new thread after close
    assert prefetcher.take(3, reaugment).version == 3
    prefetcher.close()


def test_loader_state_round_trip_and_checks():
    state = LoaderState(2, 5, 7, None, b"\x00dali\xff", (1, 4), 32, 8)
    plain = state.to_dict()
    assert plain["source"] == "AGRhbGn/" and plain["shard"] == [1, 4]
    assert LoaderState.from_dict(plain) == state
    state.check(32, 8, (1, 4))
    with pytest.raises(ValueError, match="state has batch_size=32, this loader 16"):
        state.check(16, 8, (1, 4))
    with pytest.raises(ValueError, match="state has M=8, this loader 4"):
        state.check(32, 4, (1, 4))
    with pytest.raises(ValueError, match=r"state is of shard \[1, 4\], this loader \[0, 4\]"):
        state.check(32, 8, (0, 4))


@pytest.mark.parametrize("output", ["float", "float32", "float16", "bfloat16"])
def test_from_arrays_normalizes_every_float_output_by_the_arrays_own_statistics(output):
    from fastpolicy import PolicyDALILoader
    from fastpolicy.data.stats import channel_stats

    rng = np.random.default_rng(0)
    images = rng.integers(0, 120, (16, 12, 12, 3), dtype=np.uint8)
    loader = PolicyDALILoader.from_arrays(
        images, np.zeros(16, np.int64), batch_size=4, M=1, device="cpu", output=output
    )
    mean, std = channel_stats(images)
    assert loader.output_spec.mean == pytest.approx(mean) and loader.output_spec.std == pytest.approx(std)
