"""Bad input: every case is generated; each decodes, or fails naming the file, or is a counted skip."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from conftest import photos
from PIL import Image

from fastpolicy.data import fashion_mnist
from fastpolicy.data.files import BadImageError, check_files, read_file_list, scan_folder

pytest.importorskip("nvidia.dali")
from fastpolicy.loader import Augment, FileChecks, Pipeline, PolicyDALILoader


def _photo(size=(96, 72)) -> Image.Image:
    return Image.fromarray(photos()["astronaut"]).resize(size)


def _good_tree(root, classes=2, per_class=4):
    for c in range(classes):
        os.makedirs(root / f"c{c}", exist_ok=True)
        for k in range(per_class):
            _photo((96 + 8 * k, 72)).save(root / f"c{c}" / f"{k}.jpg")
    return root


def _write_bad(path, kind: str):
    """One generated bad (or unusual) file of ``kind`` at ``path``."""
    if kind in ("truncated", "corrupt"):
        _photo().save(path)
        data = bytearray(path.read_bytes())
        if kind == "truncated":
            data = data[: len(data) // 2]
        else:
            # a bogus Huffman table: the header (which PIL reads without decoding) stays valid, but no
            # decoder can use the table (its 16 code counts sum past 256)
            table = data.find(b"\xff\xc4")
            data[table + 5 : table + 21] = b"\xff" * 16
        path.write_bytes(bytes(data))
    elif kind == "cmyk":
        _photo().convert("CMYK").save(path, format="JPEG")
    elif kind == "grey":
        _photo().convert("L").save(path, format="JPEG")
    elif kind == "png_as_jpg":
        _photo().save(path, format="PNG")
    elif kind == "text":
        path.write_text("not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("kind", ["cmyk", "grey", "png_as_jpg"])
def test_unusual_but_valid_images_decode_to_rgb(tmp_path, kind):
    root = _good_tree(tmp_path)
    _write_bad(root / "c1" / "odd.jpg", kind)
    loader = PolicyDALILoader(
        str(root),
        batch_size=9,
        M=1,
        image_size=32,
        output="uint8",
        augment=Augment(baseline="center"),
        pipeline=Pipeline(shuffle=False),
    )
    batch = next(iter(loader))
    assert batch.images.shape == (9, 3, 32, 32)
    odd = loader.images_list.files.index(str(root / "c1" / "odd.jpg"))
    row = int(np.flatnonzero(batch.indices == odd)[0])
    assert batch.labels[row] == 1
    if kind == "grey":  # grey decodes to three equal channels
        assert (batch.images[row, 0] == batch.images[row, 1]).all()


@pytest.mark.parametrize(
    "kind,reason", [("truncated", "truncated JPEG"), ("text", "not an image"), ("empty", "empty file")]
)
def test_bad_files_raise_naming_the_file_or_are_skipped(tmp_path, kind, reason):
    root = _good_tree(tmp_path)
    bad = root / "c0" / f"bad_{kind}.jpg"
    _write_bad(bad, kind)
    with pytest.raises(BadImageError, match=str(bad)) as error:
        PolicyDALILoader(str(root), batch_size=4, M=1, image_size=32)
    assert reason in str(error.value)
    loader = PolicyDALILoader(str(root), batch_size=4, M=1, image_size=32, checks=FileChecks(on_bad="skip"))
    assert loader.images_list.skipped == [(str(bad), error.value.bad[0][1])]
    assert len(loader.images_list) == 8 and len(list(loader)) == 2


def test_corrupt_data_found_by_decode_check_and_named_at_run_time(tmp_path):
    root = _good_tree(tmp_path)
    bad = root / "c1" / "corrupt.jpg"
    _write_bad(bad, "corrupt")
    with pytest.raises(BadImageError, match=str(bad)):
        check_files(scan_folder(str(root)), verify="decode")
    # The header check passes it; DALI fails at run time and the loader names the file.
    loader = PolicyDALILoader(str(root), batch_size=9, M=1, image_size=32, pipeline=Pipeline(shuffle=False))
    with pytest.raises(BadImageError, match=str(bad)):
        list(loader)
    checks = FileChecks(verify="decode", on_bad="skip")
    skipped = PolicyDALILoader(str(root), batch_size=4, M=1, image_size=32, checks=checks)
    assert [path for path, _ in skipped.images_list.skipped] == [str(bad)]


def test_a_dataset_root_is_not_read_as_two_classes(tmp_path):
    for split in ("train", "val"):
        _good_tree(tmp_path / "tiny" / split)
    with pytest.raises(ValueError, match=r"holds train/ and val/.*tiny/train"):
        scan_folder(str(tmp_path / "tiny"))
    with pytest.raises(ValueError, match="holds train/ and val/"):
        PolicyDALILoader(str(tmp_path / "tiny"), batch_size=2, M=1, image_size=32)
    assert scan_folder(str(tmp_path / "tiny" / "train")).classes == ["c0", "c1"]


def test_empty_class_folder(tmp_path):
    root = _good_tree(tmp_path, classes=3)
    shutil.rmtree(root / "c1")
    os.makedirs(root / "c1")
    (root / "c1" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="c1"):
        scan_folder(str(root))
    images = scan_folder(str(root), on_bad="skip")
    assert images.classes == ["c0", "c1", "c2"]
    assert sorted(set(images.labels.tolist())) == [0, 2]
    assert images.skipped == [(str(root / "c1"), "empty class folder")]


def test_file_list_missing_file_and_malformed_lines(tmp_path):
    _good_tree(tmp_path)
    listing = tmp_path / "train.txt"
    listing.write_text("# comment\nc0/0.jpg 0\n\nc1/0.jpg 1\nc1/gone.jpg 1\n")
    with pytest.raises(BadImageError, match="gone.jpg.*no such file"):
        PolicyDALILoader(str(listing), batch_size=1, M=1, image_size=32)
    images = read_file_list(str(listing))
    assert [os.path.basename(f) for f in images.files] == ["0.jpg", "0.jpg", "gone.jpg"]
    assert images.labels.tolist() == [0, 1, 1]
    listing.write_text("c0/0.jpg 0\nc0/1.jpg zero\n")
    with pytest.raises(ValueError, match=r"train.txt:2"):
        read_file_list(str(listing))


def test_fashion_mnist_reader(tmp_path):
    images, labels = fashion_mnist.load("test")
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(labels.tolist()) == set(range(10))
    broken = tmp_path / "t10k-images-idx3-ubyte.gz"
    import gzip

    with gzip.open(fashion_mnist.os.path.join(fashion_mnist.DEFAULT_ROOT, "t10k-images-idx3-ubyte.gz")) as f:
        head = f.read(5000)
    with gzip.open(broken, "wb") as f:
        f.write(head)
    shutil.copy(os.path.join(fashion_mnist.DEFAULT_ROOT, "t10k-labels-idx1-ubyte.gz"), tmp_path)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        fashion_mnist.load("test", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        fashion_mnist.load("train", root=str(tmp_path))


def test_indices_come_back_as_numbers_even_for_a_file_listed_twice(tmp_path):
    """The reader's label output is each file's index in the list, so a path listed twice
    keeps both of its indices and labels (a path → index map kept only the last)."""
    _good_tree(tmp_path)
    listing = tmp_path / "train.txt"
    listing.write_text("c0/0.jpg 0\nc0/0.jpg 1\nc1/1.jpg 1\nc1/2.jpg 0\n")
    loader = PolicyDALILoader(
        str(listing),
        batch_size=2,
        M=1,
        image_size=16,
        augment=Augment(baseline="center"),
        pipeline=Pipeline(shuffle=False),
    )
    batches = list(loader)
    assert len(batches) == 2
    assert [b.indices.tolist() for b in batches] == [[0, 1], [2, 3]]
    assert [b.labels.tolist() for b in batches] == [[0, 1], [1, 0]]
    assert torch.equal(batches[0].images[0], batches[0].images[1])  # the same file, centre-cropped


def test_hidden_folders_and_files_are_no_classes_or_images(tmp_path):
    """``.ipynb_checkpoints`` once became class 0, and macOS's ``._x.jpg`` an unreadable image."""
    for name in ("cat", "dog", ".ipynb_checkpoints"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "a.jpg")
    (tmp_path / "cat" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (tmp_path / "dog" / ".thumbs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "dog" / ".thumbs" / "b.jpg")
    images = scan_folder(str(tmp_path))
    assert images.classes == ["cat", "dog"] and len(images.files) == 2
    assert sorted(os.path.basename(p) for p in images.ignored) == ["._a.jpg", ".ipynb_checkpoints", ".thumbs"]
