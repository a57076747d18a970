"""CIFAR-10/100 folders in their Python format: read safely, wrong or partial folders named,
and the cifar10 presets' pipeline (Cutout 16×16 after the policy) on them."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from fastpolicy.data import cifar
from fastpolicy.data.cifar import CifarFormatError


def write_cifar10(folder, per_batch: int = 20, seed: int = 0) -> np.ndarray:
    """A CIFAR-10 folder in the real format (5 train batches, a test batch, batches.meta); returns
    the first train batch's images as uint8 [N, 32, 32, 3]."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        first = images if first is None else first
        data = images.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # R plane, G plane, B plane
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            b"data": data,
            b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
        }
        with open(os.path.join(folder, name), "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(os.path.join(folder, "batches.meta"), "wb") as handle:
        pickle.dump(
            {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": per_batch},
            handle,
            protocol=2,
        )
    return first


def test_cifar10_folder_reads_as_hwc_images(tmp_path):
    folder = str(tmp_path / "cifar-10-batches-py")
    first = write_cifar10(folder)
    assert cifar.detect(folder) == "cifar10"
    images, labels, names = cifar.load(folder, "train")
    assert images.shape == (100, 32, 32, 3) and images.dtype == np.uint8 and labels.shape == (100,)
    np.testing.assert_array_equal(images[:20], first)
    assert names[3] == "class3" and cifar.load(folder, "test")[0].shape == (20, 32, 32, 3)


def test_cifar100_folder(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 30), ("test", 10)):
        with open(folder / name, "wb") as handle:
            pickle.dump(
                {
                    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    b"fine_labels": list(rng.integers(0, 100, n)),
                    b"coarse_labels": [0] * n,
                },
                handle,
            )
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, handle)
    images, labels, names = cifar.load(str(folder), "train")
    assert images.shape == (30, 32, 32, 3) and len(names) == 100 and labels.max() < 100


def test_wrong_partial_and_unsafe_folders_are_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(str(folder))
    (folder / "data_batch_3").unlink()
    with pytest.raises(CifarFormatError, match=r"data_batch_3: missing"):
        cifar.load(str(folder), "train")
    write_cifar10(str(folder))
    with open(folder / "data_batch_2", "wb") as handle:
        pickle.dump({b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}, handle)
    with pytest.raises(CifarFormatError, match=r"data_batch_2: 'data' must be a uint8 array \[N, 3072\]"):
        cifar.load(str(folder), "train")

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    with open(folder / "data_batch_2", "wb") as handle:
        pickle.dump({b"data": Exploit()}, handle)
    with pytest.raises(CifarFormatError, match=r"data_batch_2: not a CIFAR batch file .*system"):
        cifar.load(str(folder), "train")
    assert not os.path.exists("pwned")
    with pytest.raises(CifarFormatError, match="not a CIFAR folder"):
        cifar.load(str(tmp_path), "train")


def test_cifar_preset_trains_with_cutout_after_the_policy(tmp_path):
    pytest.importorskip("nvidia.dali")
    from fastpolicy.train.adversarial import AdversarialConfig, AdversarialSearch
    from fastpolicy.train.presets import get_preset

    assert get_preset("cifar10_wrn28_10").cutout == 16
    folder = str(tmp_path / "cifar-10-batches-py")
    write_cifar10(folder, per_batch=16)
    seen = []
    search = AdversarialSearch(
        AdversarialConfig(
            out=str(tmp_path / "run"),
            preset="cifar10_resnet18",
            data=folder,
            model="small_cnn",
            epochs=1,
            batch=16,
            M=2,
            device="cpu",
            progress=False,
        )
    )
    search.on_step = lambda batch, means, halves=None: seen.append(batch.params)
    search.run_epoch()
    params = seen[0]
    assert params.k == 3 and np.all(params.op[:, 2] == cifar_cutout_id())  # the policy's two slots, then Cutout
    assert np.allclose(params.value[:, 2], 16 / 32)


def cifar_cutout_id() -> int:
    from fastpolicy import OPS

    return OPS["Cutout"].id
