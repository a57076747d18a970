"""Webdataset and TFRecord shards: converted from folders, read by DALI's readers, they give the
folder's labels and pixels; sharded by rank; bad shards named by shard and sample key."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error

from fastpolicy.data.manifest import ManifestError
from fastpolicy.data.shards import BadShardError, ShardKeys, list_shards, write_shards
from fastpolicy.loader.loader import PolicyDALILoader
from fastpolicy.loader.settings import Augment, FileChecks, Pipeline, Sharding
from fastpolicy.loader.shards import ShardDataset

FORMATS = ("webdataset", "tfrecord")


@contextmanager
def deadline(seconds: int = 60):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def expire(*_):
        raise TimeoutError(f"no result within {seconds} s: the loader hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def read_all(
    data, sharding: Sharding | None = None, batch_size: int = 3, shuffle: bool = False, **kw
) -> dict[int, tuple[int, np.ndarray]]:
    """``{dataset index: (label, uint8 [3, 32, 32] image)}`` of one epoch, no policy."""
    with deadline():
        loader = PolicyDALILoader(
            data,
            batch_size,
            M=1,
            image_size=32,
            device="cpu",
            output="uint8",
            sharding=sharding,
            augment=Augment(baseline="center"),
            pipeline=Pipeline(seed=5, shuffle=shuffle, drop_last=False),
            **kw,
        )
        seen: dict[int, tuple[int, np.ndarray]] = {}
        for batch in loader:
            for row, index in enumerate(batch.indices.tolist()):
                assert index not in seen, f"index {index} read twice in one epoch"
                seen[index] = (int(batch.labels[row]), batch.images[row].numpy().copy())
    return seen


def assert_same(shards: dict, folder: dict) -> None:
    assert sorted(shards) == sorted(folder)
    for index, (label, image) in folder.items():
        assert shards[index][0] == label, f"sample {index}: label {shards[index][0]} != folder's {label}"
        np.testing.assert_array_equal(shards[index][1], image, err_msg=f"sample {index}")


@pytest.fixture(scope="module")
def converted(photo_tree, tmp_path_factory) -> dict[str, str]:
    """The photo tree (20 images, 5 classes) as shards of 6 samples (the last holds 2), both formats."""
    out = tmp_path_factory.mktemp("shards")
    return {f: (write_shards(photo_tree, str(out / f), f, 6, progress=False), str(out / f))[1] for f in FORMATS}


@pytest.fixture(scope="module")
def fashion_tree(tmp_path_factory) -> str:
    """40 Fashion-MNIST test images as an image folder of grey PNGs (class folders ``0`` … ``9``)."""
    from PIL import Image

    from fastpolicy.data import fashion_mnist

    images, labels = fashion_mnist.load("test")
    root = tmp_path_factory.mktemp("fashion")
    for i in range(40):
        folder = root / str(labels[i])
        folder.mkdir(exist_ok=True)
        Image.fromarray(images[i, :, :, 0]).save(folder / f"{i:05d}.png")
    return str(root)


@pytest.mark.parametrize("format", FORMATS)
def test_converted_photo_tree_gives_the_folders_labels_and_pixels(photo_tree, converted, format):
    folder = read_all(photo_tree)
    assert len(folder) == 20
    assert_same(read_all(converted[format]), folder)
    names = sorted(os.listdir(converted[format]))  # 4 shards (+ 4 indexes) and the manifest
    assert len(names) == (5 if format == "webdataset" else 9) and "manifest.json" in names


@pytest.mark.parametrize("format", FORMATS)
def test_converted_fashion_mnist_gives_the_folders_labels_and_pixels(fashion_tree, tmp_path, format):
    write_shards(fashion_tree, str(tmp_path), format, 16, progress=False)
    folder = read_all(fashion_tree, batch_size=8)
    assert len(folder) == 40 and len({label for label, _ in folder.values()}) > 5
    assert_same(read_all(str(tmp_path), batch_size=8), folder)


def test_shards_are_given_as_a_brace_pattern_a_glob_a_folder_or_a_list(converted):
    folder = converted["webdataset"]
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".tar"))
    assert list_shards(folder) == ("webdataset", paths)
    assert list_shards(os.path.join(folder, "shard-{000000..000003}.tar")) == ("webdataset", paths)
    assert list_shards(os.path.join(folder, "shard-*.tar")) == ("webdataset", paths)
    assert list_shards(paths) == ("webdataset", paths)
    assert list_shards(os.path.join(folder, "shard-{000001..000002}.tar"))[1] == paths[1:3]
    with pytest.raises(FileNotFoundError, match="shard-000004.tar: no such file"):
        list_shards(os.path.join(folder, "shard-{000000..000009}.tar"))
    assert read_all(paths[:2]).keys() == set(range(12))


@pytest.mark.parametrize("format", FORMATS)
def test_two_ranks_see_disjoint_samples_covering_the_epoch(converted, format):
    ranks = [read_all(converted[format], sharding=Sharding(rank, 2), batch_size=4) for rank in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    assert set(ranks[0]) | set(ranks[1]) == set(range(20))
    assert [len(r) for r in ranks] == [10, 10]
    thirds = [read_all(converted[format], sharding=Sharding(rank, 3), batch_size=4) for rank in range(3)]
    assert sorted(i for r in thirds for i in r) == list(range(20))  # 6 + 7 + 7: shards differ by at most one
    shuffled = [read_all(converted[format], Sharding(rank, 3), batch_size=4, shuffle=True) for rank in range(3)]
    assert sorted(i for r in shuffled for i in r) == list(range(20))
    assert [list(r) for r in shuffled] != [list(r) for r in thirds]  # another order, the same cover


@pytest.mark.parametrize("format", FORMATS)
def test_a_shard_loader_resumes_at_the_same_batch(converted, format):
    def loader():
        pipeline = Pipeline(seed=4, shuffle=True, drop_last=True)
        return PolicyDALILoader(
            converted[format], 4, M=2, image_size=32, device="cpu", output="uint8", pipeline=pipeline
        )

    with deadline():
        first = loader()
        batches = iter(first)
        next(batches)
        state = first.state_dict()
        expected = next(batches)
        resumed = loader()
        resumed.load_state_dict(state)
        again = next(iter(resumed))
    assert again.indices.tolist() == expected.indices.tolist()
    assert np.array_equal(again.images.numpy(), expected.images.numpy())


def test_the_class_count_and_names_come_from_the_manifest(converted, photo_tree):
    for format in FORMATS:
        dataset = ShardDataset.open(converted[format])
        assert dataset.class_count() == 5 and dataset.classes == tuple(sorted(os.listdir(photo_tree)))
    with pytest.raises(ValueError, match="ShardKeys.classes 7, but the shards' manifest lists 5"):
        ShardDataset.open(converted["tfrecord"], ShardKeys(classes=7))


def test_the_fingerprint_covers_the_shard_list_names_sizes_and_indexes(converted, tmp_path):
    for format in FORMATS:
        assert ShardDataset.open(converted[format]).fingerprint() == ShardDataset.open(converted[format]).fingerprint()
    copy = tmp_path / "copy"
    shutil.copytree(converted["tfrecord"], copy)
    before = ShardDataset.open(str(copy)).fingerprint()
    assert before["kind"] == "tfrecord" and before["images"] == 20
    after = ShardDataset.open(str(copy), checks=FileChecks(verify="decode", on_bad="skip")).fingerprint()
    assert after == before  # the same samples
    tars = sorted(n for n in os.listdir(converted["webdataset"]) if n.endswith(".tar"))
    part = ShardDataset.open(os.path.join(converted["webdataset"], "shard-{000000..000001}.tar"))
    assert (
        part.fingerprint()["images"] == 12
        and part.fingerprint() != ShardDataset.open(converted["webdataset"]).fingerprint()
    )
    assert ShardDataset.open([os.path.join(converted["webdataset"], n) for n in tars[:3]]).fingerprint() != (
        ShardDataset.open(converted["webdataset"]).fingerprint()
    )


def test_a_tfrecord_without_its_index_points_to_tfrecord2idx(converted, tmp_path):
    shutil.copytree(converted["tfrecord"], tmp_path / "t")
    os.remove(tmp_path / "t" / "shard-000002.idx")
    with pytest.raises(FileNotFoundError, match=r"shard-000002.tfrecord has no index file .*tfrecord2idx"):
        ShardDataset.open(str(tmp_path / "t"))
    ShardDataset.open(str(tmp_path / "t"), ShardKeys(index_dir=converted["tfrecord"]))  # indexes elsewhere


def test_the_keys_and_features_are_configurable(photo_tree, tmp_path):
    from tfrecord.writer import TFRecordWriter

    folder = read_all(photo_tree)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(photo_tree) for f in fs)
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        for i, path in enumerate(files):
            add(tar, f"{i:04d}.image.jpeg", Path(path).read_bytes())
            add(tar, f"{i:04d}.target", str(folder[i][0]).encode())
    writer = TFRecordWriter(str(tmp_path / "a.tfrecord"))
    for i, path in enumerate(files):
        writer.write({"jpeg": (Path(path).read_bytes(), "byte"), "y": (folder[i][0], "int")})
    writer.close()
    tfrecord2idx(tmp_path / "a.tfrecord", tmp_path / "a.idx")
    manifest(tmp_path, {"a.tar": len(files), "a.tfrecord": len(files)}, classes=5)
    wds = ShardDataset.open(str(tmp_path / "a.tar"), ShardKeys(image=("image.jpeg",), label="target"))
    assert_same(read_all(wds), folder)
    tfr = ShardDataset.open(str(tmp_path / "a.tfrecord"), ShardKeys(image_feature="jpeg", label_feature="y"))
    assert_same(read_all(tfr), folder)
    with pytest.raises(BadShardError, match=r"a.tar: sample 0000: missing key jpg/jpeg/png \(has image.jpeg, target\)"):
        ShardDataset.open(str(tmp_path / "a.tar"))


def manifest(folder, counts: dict[str, int], classes: int) -> None:
    """A manifest for hand-made shards in ``folder`` (file name → samples), classes "0" … ."""
    from fastpolicy.data.manifest import ShardManifest, sha256_of

    entries = {
        name: {"samples": n, "bytes": os.path.getsize(folder / name), "sha256": sha256_of(str(folder / name))}
        for name, n in counts.items()
    }
    kind = "tfrecord" if next(iter(counts)).endswith(".tfrecord") else "webdataset"
    ShardManifest(str(folder), kind, tuple(str(i) for i in range(classes)), entries).write()


def tfrecord2idx(shard, index) -> None:
    """Index ``shard`` with DALI's own ``tfrecord2idx`` (installed with DALI)."""
    subprocess.run(["tfrecord2idx", str(shard), str(index)], check=True, capture_output=True)


# -- bad shards ------------------------------------------------------------------------------


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def jpeg(photo_tree) -> bytes:
    first = sorted(os.listdir(photo_tree))[0]
    path = os.path.join(photo_tree, first, sorted(os.listdir(os.path.join(photo_tree, first)))[0])
    return Path(path).read_bytes()


def bad_tar(tmp_path, jpeg: bytes, bad: tuple[str, bytes] | None, name: str = "bad.tar") -> list[str]:
    """A good shard of 4 samples and ``name``: 3 good samples, then sample ``x`` with member ``bad``."""
    paths = [str(tmp_path / "good.tar"), str(tmp_path / name)]
    for path, count in zip(paths, (4, 3)):
        with tarfile.open(path, "w") as tar:
            for i in range(count):
                add(tar, f"s{i}.jpg", jpeg)
                add(tar, f"s{i}.cls", b"1")
            if path == paths[1] and bad is not None:
                for member, data in (("x.jpg", jpeg), ("x.cls", b"2")):
                    if member.split(".")[1] != bad[0].split(".")[1]:
                        add(tar, member, data)
                if bad[1] is not None:
                    add(tar, bad[0], bad[1])
    manifest(tmp_path, {os.path.basename(paths[0]): 4, os.path.basename(paths[1]): 3 + (bad is not None)}, 10)
    return paths


BAD_MEMBERS = {
    "missing key": (("x.cls", None), "missing key cls (has jpg)"),
    "label out of range": (("x.cls", b"-3"), "label -3 out of range"),
    "label not a number": (("x.cls", b"cat"), "label b'cat' is not an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_MEMBERS))
def test_a_bad_webdataset_sample_is_named_by_shard_and_key_or_skipped(tmp_path, jpeg, case):
    member, reason = BAD_MEMBERS[case]
    paths = bad_tar(tmp_path, jpeg, member)
    with pytest.raises(BadShardError, match=f"bad.tar: sample x: {reason}".replace("(", r"\(").replace(")", r"\)")):
        ShardDataset.open(paths)
    assert len(read_all(paths, checks=FileChecks(on_bad="skip"))) == 7


def test_labels_beyond_the_manifests_class_count_are_refused_naming_shard_and_sample(tmp_path, jpeg):
    for label in (b"10", b"1000000000000"):  # the second once allocated 512 TB for its classes
        paths = bad_tar(tmp_path, jpeg, ("x.cls", label))
        with pytest.raises(
            BadShardError, match=rf"bad.tar: sample x: label {int(label)} out of range \(must be in \[0, 10\)\)"
        ):
            ShardDataset.open(paths)
    paths = bad_tar(tmp_path, jpeg, ("x.cls", b"10"))
    manifest(tmp_path, {"good.tar": 4, "bad.tar": 4}, classes=11)
    assert len(ShardDataset.open(paths)) == 8


def test_a_non_image_payload_is_named_after_dali_fails_or_skipped_when_decoded_first(tmp_path, jpeg):
    paths = bad_tar(tmp_path, jpeg, ("x.jpg", b"this is no image at all"))
    with pytest.raises(BadShardError, match=r"bad.tar: sample x: not a decodable image"):
        read_all(paths)
    assert len(read_all(paths, checks=FileChecks(verify="decode", on_bad="skip"))) == 7


def test_a_truncated_tar_is_refused_by_its_manifest_or_names_the_cut_sample(tmp_path, jpeg):
    from fastpolicy.data.shards import describe_shards

    paths = bad_tar(tmp_path, jpeg, None)
    with open(paths[1], "r+b") as handle:  # cut inside the last sample's image
        handle.truncate(1024 + 2 * (512 + -(-len(jpeg) // 512) * 512 + 1024) + 512 + 100)
    with pytest.raises(ManifestError, match=r"bad.tar: \d+ bytes, its manifest .* says \d+: changed or cut"):
        ShardDataset.open(paths, checks=FileChecks(on_bad="skip"))  # never read as a smaller whole
    describe_shards(str(tmp_path))  # shards that came cut, described as they are
    with pytest.raises(BadShardError, match=r"bad.tar: sample s2: truncated: member s2.jpg ends at byte"):
        ShardDataset.open(paths)
    assert len(read_all(paths, checks=FileChecks(on_bad="skip"))) == 6


def test_an_empty_shard_is_named(tmp_path, jpeg):
    paths = bad_tar(tmp_path, jpeg, None)
    with tarfile.open(tmp_path / "empty.tar", "w"):
        pass
    paths.append(str(tmp_path / "empty.tar"))
    manifest(tmp_path, {"good.tar": 4, "bad.tar": 3, "empty.tar": 0}, 10)
    with pytest.raises(BadShardError, match=r"empty.tar: sample -: empty shard: no samples"):
        ShardDataset.open(paths)
    assert len(read_all(paths, checks=FileChecks(on_bad="skip"))) == 7


def test_a_truncated_tfrecord_is_refused_by_its_manifest_or_names_the_cut_record(converted, tmp_path):
    from fastpolicy.data.shards import describe_shards

    shutil.copytree(converted["tfrecord"], tmp_path / "t")
    shard = tmp_path / "t" / "shard-000001.tfrecord"
    os.truncate(shard, os.path.getsize(shard) - 10)
    with pytest.raises(ManifestError, match=r"shard-000001.tfrecord: \d+ bytes, its manifest"):
        ShardDataset.open(str(tmp_path / "t"))
    describe_shards(str(tmp_path / "t"))
    with pytest.raises(BadShardError, match=r"shard-000001.tfrecord: sample record 5: truncated: ends at byte"):
        ShardDataset.open(str(tmp_path / "t"))
    assert len(read_all(str(tmp_path / "t"), checks=FileChecks(on_bad="skip"))) == 19


def test_bad_tfrecord_examples_are_named_at_run_time_or_skipped_when_decoded_first(photo_tree, jpeg, tmp_path):
    from tfrecord.writer import TFRecordWriter

    writer = TFRecordWriter(str(tmp_path / "a.tfrecord"))
    for example in [
        {"image/encoded": (jpeg, "byte"), "image/class/label": (1, "int")},
        {"image/encoded": (jpeg, "byte"), "image/class/label": (-2, "int")},  # label out of range
        {"image/encoded": (b"not an image", "byte"), "image/class/label": (1, "int")},
        {"image/encoded": (jpeg, "byte")},  # missing key
    ]:
        writer.write(example)
    writer.close()
    tfrecord2idx(tmp_path / "a.tfrecord", tmp_path / "a.idx")
    manifest(tmp_path, {"a.tfrecord": 4}, 10)
    with pytest.raises(BadShardError) as raised:
        ShardDataset.open(str(tmp_path / "a.tfrecord"), checks=FileChecks(verify="decode"))
    message = str(raised.value)
    assert "3 bad shard samples" in message and "a.tfrecord: sample record 1: label -2 out of range" in message
    assert "sample record 2: not a decodable image" in message
    assert "sample record 3: missing key image/class/label (has image/encoded)" in message
    with pytest.raises(BadShardError, match=r"a.tfrecord: sample record \d: "):  # found while reading, no hang
        read_all(str(tmp_path / "a.tfrecord"), batch_size=4)
    kept = read_all(str(tmp_path / "a.tfrecord"), checks=FileChecks(verify="decode", on_bad="skip"))
    assert [label for label, _ in kept.values()] == [1]


def test_the_shards_command_converts_without_a_bar_in_a_file(photo_tree, tmp_path, capsys):
    from fastpolicy.cli import main

    assert main(["shards", photo_tree, str(tmp_path / "out"), "--format", "tfrecord", "--shard-size", "8"]) == 0
    captured = capsys.readouterr()
    # stderr is not a terminal here (as when piped to a file): no progress bar is written into it
    assert "3 tfrecord shards in" in captured.out and "20/20" not in captured.err and "image/s" not in captured.err
    assert sorted(os.listdir(tmp_path / "out"))[:3] == ["manifest.json", "shard-000000.idx", "shard-000000.tfrecord"]
    one_line_error(
        capsys, ["shards", photo_tree, str(tmp_path / "x"), "--shard-size", "0"], "--shard-size: 0 is not positive"
    )


# -- shards as a run's --data ----------------------------------------------------------------


def pattern(folder: str, format: str) -> str:
    """The brace pattern of the 4 shards ``write_shards`` made in ``folder``."""
    return os.path.join(folder, "shard-{000000..000003}." + ("tar" if format == "webdataset" else "tfrecord"))


@pytest.mark.parametrize("format", FORMATS)
def test_build_loaders_read_shards_with_their_own_class_count(converted, tmp_path, format):
    from fastpolicy.train.data import build_loaders

    with deadline():
        train, val, classes, channels = build_loaders(
            pattern(converted[format], format), 4, 2, 32, "cpu", 0, val_data=converted[format]
        )
    assert (classes, channels) == (5, 3)  # TFRecord: the labels are read once to count them
    assert isinstance(train.dataset, ShardDataset) and train.fingerprint() == val.fingerprint()
    assert (len(train), len(val)) == (5, 5)
    # a folder with train/ and val/ folders of shards: no --val-data needed
    shutil.copytree(converted[format], tmp_path / "train")
    shutil.copytree(converted[format], tmp_path / "val")
    with deadline():
        train, val, classes, _ = build_loaders(str(tmp_path), 4, 2, 32, "cpu", 0)
    assert classes == 5 and train.fingerprint()["kind"] == format
    with pytest.raises(ValueError, match=r"names shards: give the held-out shards with --val-data"):
        build_loaders(converted[format], 4, 2, 32, "cpu", 0)
    with pytest.raises(ValueError, match=r"--val-data \(val_data\) is for image folders and shards"):
        build_loaders(None, 4, 2, 28, "cpu", 0, val_data=converted[format])


def test_a_missing_tfrecord_label_is_named_when_read(photo_tree, jpeg, tmp_path):
    from tfrecord.writer import TFRecordWriter

    from fastpolicy.train.data import build_loaders

    writer = TFRecordWriter(str(tmp_path / "a.tfrecord"))
    for label in (1, 2, 0, 3):
        writer.write({"image/encoded": (jpeg, "byte"), "image/class/label": (label, "int")})
    writer.write({"image/encoded": (jpeg, "byte")})
    writer.close()
    tfrecord2idx(tmp_path / "a.tfrecord", tmp_path / "a.idx")
    manifest(tmp_path, {"a.tfrecord": 5}, 4)
    with deadline(), pytest.raises(BadShardError, match=r"a.tfrecord: sample record 4: "):
        train, *_ = build_loaders(
            str(tmp_path / "a.tfrecord"), 5, 1, 32, "cpu", 0, val_data=str(tmp_path / "a.tfrecord")
        )
        list(train)


@pytest.mark.parametrize("format", FORMATS)
def test_a_search_split_of_shards_is_disjoint_and_named_by_shard_and_key(converted, format):
    from fastpolicy.train.data import build_search_loaders

    with deadline():
        train, val, classes, _, split = build_search_loaders(
            pattern(converted[format], format), 4, 2, 32, "cpu", 3, val_count=6
        )
    assert (len(train.dataset), len(val.dataset), classes) == (14, 6, 5)
    assert not set(split["train"]) & set(split["val"]) and len(set(split["train"] + split["val"])) == 20
    assert split["val"][0].startswith("shard-00000") and "/" in split["val"][0]
    assert train.fingerprint() != val.fingerprint()
    seen = {index for batch in val for index in batch.indices.tolist()}
    assert seen == set(range(6))  # the part's own indices, 0 … 5
    again = build_search_loaders(pattern(converted[format], format), 4, 2, 32, "cpu", 3, val_count=6)
    assert again[-1] == split and again[0].fingerprint() == train.fingerprint()


def test_the_command_line_takes_a_shard_pattern_and_names_a_missing_shard(converted, tmp_path, capsys):
    missing = os.path.join(converted["webdataset"], "shard-{000000..000009}.tar")
    one_line_error(capsys, ["train", "--data", missing, "--out", str(tmp_path / "r")], "shard-000004.tar: no such file")
    nothing = str(tmp_path / "nowhere-{0..3}.tar")
    one_line_error(capsys, ["train", "--data", nothing, "--out", str(tmp_path / "r")], "nowhere-0.tar: no such file")


class Stopped(Exception):
    """Raised right after a checkpoint write: the process 'dies' there."""


def _search(out, data, val_data, epochs=2):
    from fastpolicy.train.adversarial import AdversarialConfig

    # a 32² preset (CIFAR's, the small CNN): shards of 160×120 photos, crops of 32²
    return AdversarialConfig(
        out=str(out),
        preset="cifar10_wrn28_10",
        model="small_cnn",
        data=data,
        val_data=val_data,
        epochs=epochs,
        batch=4,
        M=2,
        device="cpu",
        progress=False,
    )


@pytest.mark.slow
def test_an_adversarial_search_on_either_format_is_the_same_and_resumes(converted, tmp_path, monkeypatch):
    """Two epochs on TFRecord shards; the same on webdataset shards stopped after the first
    epoch's checkpoint and resumed: the same rows (same pixels, labels and order), and a resume
    with other shards is refused."""
    from fastpolicy.train import checkpoint
    from fastpolicy.train.adversarial import AdversarialSearch
    from fastpolicy.train.checkpoint import CheckpointError

    with deadline(300):
        data = pattern(converted["tfrecord"], "tfrecord")
        tfrecord = AdversarialSearch(_search(tmp_path / "t", data, converted["tfrecord"]))
        assert tfrecord.num_classes == 5
        whole = tfrecord.run()
        shutil.copytree(converted["webdataset"], tmp_path / "wds")  # a folder of .tar files as --data
        config = _search(tmp_path / "w", str(tmp_path / "wds"), converted["webdataset"])
        real = checkpoint.save_distributed

        def stop(path, state, loader):
            real(path, state, loader)
            raise Stopped(path)  # the process dies right after the first epoch's checkpoint

        monkeypatch.setattr(checkpoint, "save_distributed", stop)
        with pytest.raises(Stopped):
            AdversarialSearch(config).run()
        monkeypatch.setattr(checkpoint, "save_distributed", real)
        resumed = AdversarialSearch(config, resume=True)
        assert resumed.epoch == 1
        last = resumed.run()

    def numbers(row):
        return {k: v for k, v in row.items() if k != "seconds"}

    assert numbers(last) == numbers(whole) and last["epoch"] == 1
    assert len(resumed.history) == 2 and numbers(resumed.history[0]) == numbers(tfrecord.history[0])
    os.remove(tmp_path / "wds" / "shard-000003.tar")  # the shard list changed under the same --data
    refused = r"the train data differ .*: 20 webdataset samples .* 18 webdataset samples"
    with pytest.raises(CheckpointError, match=refused):
        AdversarialSearch(config, resume=True)
