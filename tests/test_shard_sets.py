"""A shard set is a unit with a manifest (issue 37): the converter publishes it whole or not at all,
the reader refuses what its manifest does not vouch for, train and held-out sets share a class map,
every image format the folder loader takes converts, and TFRecord CRCs and index lines are checked."""

from __future__ import annotations

import json
import os
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image
from test_shards import add, deadline, read_all

from fastpolicy.data import shards as shards_module
from fastpolicy.data.manifest import ManifestError, ShardManifest
from fastpolicy.data.shards import BadShardError, describe_shards, write_shards
from fastpolicy.errors import UserError
from fastpolicy.loader import FileChecks, ShardDataset

FORMATS = ("webdataset", "tfrecord")


def test_a_conversion_killed_part_way_publishes_nothing(photo_tree, tmp_path, monkeypatch):
    real = shards_module._payload
    calls = []

    def dying(path):
        calls.append(path)
        if len(calls) == 11:
            raise KeyboardInterrupt  # as a Ctrl-C or a kill between two images
        return real(path)

    monkeypatch.setattr(shards_module, "_payload", dying)
    with pytest.raises(KeyboardInterrupt):
        write_shards(photo_tree, str(tmp_path / "out"), "tfrecord", 4, progress=False)
    assert os.listdir(tmp_path) == []  # no out, no partial folder left behind
    monkeypatch.setattr(shards_module, "_payload", real)
    # a process killed outright leaves its partial folder: shards without a manifest, refused on read
    monkeypatch.setattr(ShardManifest, "write", lambda self: (_ for _ in ()).throw(SystemExit(9)))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # (a SIGKILL runs no clean-up)
    with pytest.raises(SystemExit):
        write_shards(photo_tree, str(tmp_path / "out"), "tfrecord", 4, progress=False)
    monkeypatch.undo()
    (partial,) = os.listdir(tmp_path)
    assert partial.startswith("out.partial-") and not os.path.exists(tmp_path / "out")
    with pytest.raises(ManifestError, match="no manifest.json, so whether its shards are a whole set"):
        ShardDataset.open(str(tmp_path / partial))


def test_a_reconversion_replaces_the_whole_set_or_is_refused(photo_tree, tmp_path):
    out = str(tmp_path / "out")
    write_shards(photo_tree, out, "webdataset", 3, progress=False)  # 7 shards
    with pytest.raises(UserError, match=r"already holds 8 file\(s\); pass --overwrite"):
        write_shards(photo_tree, out, "webdataset", 16, progress=False)
    write_shards(photo_tree, out, "webdataset", 16, progress=False, overwrite=True)
    assert sorted(os.listdir(out)) == ["manifest.json", "shard-000000.tar", "shard-000001.tar"]
    assert len(ShardDataset.open(out)) == 20  # not 20 + the old shards' samples
    with pytest.raises(UserError, match="inside the folder they are converted from"):
        write_shards(photo_tree, os.path.join(photo_tree, "shards"), "webdataset", 16, progress=False)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="a_file: exists and is not a folder"):
        write_shards(photo_tree, str(tmp_path / "a_file"), "webdataset", 16, progress=False)


def test_train_and_held_out_sets_share_a_class_map_or_are_refused(photo_tree, tmp_path):
    from fastpolicy.train.data import build_loaders

    val_tree = tmp_path / "val_tree"
    shutil.copytree(photo_tree, val_tree)
    classes = sorted(os.listdir(val_tree))
    shutil.rmtree(val_tree / classes[1])  # the held-out folder lacks a class: its labels shift
    train, val = str(tmp_path / "train"), str(tmp_path / "val")
    write_shards(photo_tree, train, "webdataset", 8, progress=False)
    write_shards(str(val_tree), val, "webdataset", 8, progress=False)
    with deadline(), pytest.raises(ManifestError, match=rf"label 1 is '{classes[1]}' in one and '{classes[2]}'"):
        build_loaders(train, 4, 1, 32, "cpu", 0, val_data=val)
    before = ShardDataset.open(val).fingerprint()
    write_shards(str(val_tree), val, "webdataset", 8, progress=False, overwrite=True, classes_from=train)
    assert ShardDataset.open(val).classes == ShardDataset.open(train).classes == tuple(classes)
    assert ShardDataset.open(val).fingerprint() != before  # other labels: a resume must not take it as the same
    labels = sorted({label for label, _ in read_all(val).values()})
    assert labels == [0, 2, 3, 4]  # the training set's labels, class 1 absent
    with deadline():
        _, _, count, _ = build_loaders(train, 4, 1, 32, "cpu", 0, val_data=val)
    assert count == 5
    small = str(tmp_path / "small")
    write_shards(str(val_tree), small, "webdataset", 8, progress=False)  # 4 classes of its own
    with pytest.raises(UserError, match=rf"class folder\(s\) \['{classes[1]}'\] that .* does not list"):
        write_shards(photo_tree, str(tmp_path / "v2"), "webdataset", 8, progress=False, classes_from=small)


@pytest.mark.parametrize("format", FORMATS)
def test_every_image_format_the_folder_loader_takes_converts_and_reads_back(tmp_path, format):
    from fastpolicy.data.files import IMAGE_EXTENSIONS

    rng = np.random.default_rng(0)
    tree = tmp_path / "tree"
    for c in range(2):
        (tree / f"c{c}").mkdir(parents=True)
    for i, ext in enumerate(IMAGE_EXTENSIONS):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        image = Image.fromarray(pixels if ext != ".pgm" else pixels[..., 0])
        image.save(tree / f"c{i % 2}" / f"img{i}{ext}")
    write_shards(str(tree), str(tmp_path / "out"), format, 4, progress=False)
    from_folder, from_shards = read_all(str(tree)), read_all(str(tmp_path / "out"))
    assert len(from_shards) == len(IMAGE_EXTENSIONS)  # none unreadable ("missing key jpg/jpeg/png")
    for index, (label, image) in from_folder.items():
        assert from_shards[index][0] == label
        np.testing.assert_array_equal(from_shards[index][1], image, err_msg=f"{index}")


def test_shards_made_elsewhere_are_refused_until_described(tmp_path, photo_tree):
    first = os.path.join(photo_tree, sorted(os.listdir(photo_tree))[0])
    with open(os.path.join(first, sorted(os.listdir(first))[0]), "rb") as handle:
        jpeg = handle.read()
    with tarfile.open(tmp_path / "theirs-0.tar", "w") as tar:
        for i in range(5):
            add(tar, f"k{i}.jpg", jpeg)
            add(tar, f"k{i}.cls", str(i % 3).encode())
    with pytest.raises(ManifestError, match=f"describe them once with: fastpolicy shards --describe {tmp_path}"):
        ShardDataset.open(str(tmp_path))
    manifest = describe_shards(str(tmp_path))
    assert manifest.classes == ("0", "1", "2") and manifest.shards["theirs-0.tar"]["samples"] == 5
    assert len(ShardDataset.open(str(tmp_path))) == 5
    with tarfile.open(tmp_path / "theirs-0.tar", "a") as tar:  # appended to: a key twice, and the size changed
        add(tar, "k0.jpg", jpeg)
    with pytest.raises(ManifestError, match="bytes, its manifest"):
        ShardDataset.open(str(tmp_path))
    describe_shards(str(tmp_path))
    with pytest.raises(BadShardError, match="sample k0: member k0.jpg appears twice"):
        ShardDataset.open(str(tmp_path))


def test_a_changed_shard_is_caught_by_its_checksum_when_decoding(photo_tree, tmp_path):
    out = tmp_path / "out"
    write_shards(photo_tree, str(out), "webdataset", 8, progress=False)
    shard = out / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 1  # inside the first image: the same size, other bytes
    shard.write_bytes(bytes(data))
    ShardDataset.open(str(out))  # the size check alone passes (cheap, every open)
    with pytest.raises(ManifestError, match="SHA-256 differs"):
        ShardDataset.open(str(out), checks=FileChecks(verify="decode"))


def test_tfrecord_crcs_and_index_lines_are_checked(photo_tree, tmp_path):
    out = tmp_path / "out"
    write_shards(photo_tree, str(out), "tfrecord", 8, progress=False)
    shard, index = out / "shard-000000.tfrecord", out / "shard-000000.idx"
    offset, length = (int(v) for v in index.read_text().splitlines()[1].split())
    data = bytearray(shard.read_bytes())
    label_at = offset + length - 4 - 1  # the Example's last bytes: its label's varint
    data[label_at] ^= 1  # another label, the same size, the CRC unchanged
    shard.write_bytes(bytes(data))
    describe_shards(str(out))  # (re-described, so only the CRC can tell)
    with pytest.raises(BadShardError, match="sample record 1: the record at byte .* fails its data CRC"):
        ShardDataset.open(str(out), checks=FileChecks(verify="decode"))
    data[offset + 8] ^= 1  # the length's CRC
    shard.write_bytes(bytes(data))
    describe_shards(str(out))
    with pytest.raises(BadShardError, match="sample record 1: the record at byte .* fails its length CRC"):
        ShardDataset.open(str(out))
    lines = index.read_text().splitlines()
    for bad, reason in ((f"-5 {length}", "before the previous record's end"), ("12", "not 'offset size'")):
        index.write_text("\n".join([lines[0], bad, *lines[2:]]) + "\n")
        with pytest.raises(BadShardError, match=f"shard-000000.idx: sample line 2: .*{reason}"):
            ShardDataset.open(str(out))


def test_a_malformed_manifest_is_named(photo_tree, tmp_path):
    out = tmp_path / "out"
    write_shards(photo_tree, str(out), "webdataset", 8, progress=False)
    good = json.loads((out / "manifest.json").read_text())
    for change, reason in (
        ({"classes": []}, "classes must be a non-empty list"),
        ({"version": 9}, "version 9"),
        ({"shards": {"shard-000000.tar": {"samples": -1, "bytes": 3, "sha256": ""}}}, r"shards\[.*must be"),
    ):
        (out / "manifest.json").write_text(json.dumps(good | change))
        with pytest.raises(ManifestError, match=f"manifest.json: {reason}"):
            ShardDataset.open(str(out))
    (out / "manifest.json").write_text(json.dumps(good | {"shards": {"other.tar": good["shards"]["shard-000000.tar"]}}))
    with pytest.raises(ManifestError, match="shard-000000.tar: not listed in"):
        ShardDataset.open(str(out))


def test_a_shard_holding_other_than_its_recorded_samples_is_refused(photo_tree, tmp_path):
    out = tmp_path / "out"
    write_shards(photo_tree, str(out), "webdataset", 8, progress=False)
    manifest = ShardManifest.read(str(out))
    manifest.shards["shard-000001.tar"]["samples"] = 9
    manifest.write()
    with pytest.raises(ManifestError, match="shard-000001.tar: holds 8 samples, its manifest .* says 9"):
        ShardDataset.open(str(out))


def test_a_brace_range_past_the_limit_is_refused_at_once(tmp_path):
    import time

    from fastpolicy.data.shards import list_shards

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"range \{0\.\.3000000\} names 3000001 shards, over 100000"):
        list_shards(str(tmp_path / "s-{0..3000000}.tar"))
    assert time.perf_counter() - start < 1


def test_brace_patterns_expand_any_number_of_groups_like_the_shell():
    import subprocess

    from fastpolicy.data.shards import _expand_braces

    for pattern in ("{train,val}-{0..1}.tar", "s-{000..002}-{a,b}.tar", "x-{0..1}-{0..2}.tfrecord", "one.tar"):
        shell = subprocess.run(["bash", "-c", f"echo {pattern}"], capture_output=True, text=True).stdout.split()
        assert _expand_braces(pattern) == shell, pattern


def test_the_shards_command_takes_classes_overwrite_and_describe(photo_tree, tmp_path, capsys):
    from fastpolicy.cli import main

    out = str(tmp_path / "train")
    assert main(["-q", "shards", photo_tree, out, "--shard-size", "8"]) == 0
    assert main(["-q", "shards", photo_tree, out, "--shard-size", "8"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["-q", "shards", photo_tree, out, "--shard-size", "16", "--overwrite", "--classes", out]) == 0
    assert len(ShardDataset.open(out)) == 20 and len(ShardManifest.read(out).shards) == 2
    os.remove(os.path.join(out, "manifest.json"))
    assert main(["shards", "--describe", out]) == 0
    assert "2 webdataset shards, 20 samples" in capsys.readouterr().out
    assert main(["shards", "--describe", out, "x"]) == 2 and "--describe takes one folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["shards", photo_tree, str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_overwrite_never_deletes_what_is_not_a_shard_set(photo_tree, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(photo_tree, project / "images")
    (project / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds the folder the shards are converted from"):
        write_shards(str(project / "images"), str(project), "webdataset", 8, progress=False, overwrite=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    (other / "manifest.json").write_text("{}")
    with pytest.raises(UserError, match=r"holds other files \(notes.txt\): not a shard set"):
        write_shards(photo_tree, str(other), "webdataset", 8, progress=False, overwrite=True)
    (other / "notes.txt").unlink()
    (other / "manifest.json").unlink()
    (other / "shard-000000.tar").write_text("")
    with pytest.raises(UserError, match="holds no manifest"):
        write_shards(photo_tree, str(other), "webdataset", 8, progress=False, overwrite=True)
    assert (project / "notes.txt").read_text() == "mine" and len(os.listdir(project / "images")) == 5


def test_a_failed_swap_puts_the_old_set_back(photo_tree, tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    write_shards(photo_tree, out, "webdataset", 8, progress=False)
    before = sorted(os.listdir(out))
    real = os.rename

    def failing(src, dst):
        if ".partial-" in str(src) and not os.path.exists(dst):  # the new set's rename, after the old moved aside
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError, match="No space left"):
        write_shards(photo_tree, out, "webdataset", 16, progress=False, overwrite=True)
    monkeypatch.undo()
    assert sorted(os.listdir(out)) == before and len(ShardDataset.open(out)) == 20
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no partial or old folder left
