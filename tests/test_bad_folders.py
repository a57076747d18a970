"""Bad dataset folders and image files: symlink loops, ignored files, undecodable names,
oversized images — each named in one message."""

from __future__ import annotations

import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from conftest import one_line_error

from fastpolicy.data.files import BadImageError, check_files, header_problem, scan_folder


@pytest.fixture
def tree(tmp_path, photo_tree):
    root = tmp_path / "tree"
    shutil.copytree(photo_tree, root)
    return root


def test_a_symlink_loop_lists_every_image_once(tree):
    classes = sorted(os.listdir(tree))
    expected = scan_folder(str(tree))
    os.symlink(".", tree / classes[0] / "loop")  # class 0 contains itself
    os.symlink(tree / classes[0], tree / classes[1] / "linked")  # class 1 links to class 0's folder
    images = scan_folder(str(tree))
    assert images.files == expected.files and list(images.labels) == list(expected.labels)
    assert len(images.duplicates) == 4  # class 1's link to class 0's four images: listed once, under class 0
    assert all(np.sum(images.labels == c) == 4 for c in range(len(classes)))


def test_ignored_files_are_counted_and_reported(tree, capsys):
    from fastpolicy.data.files import describe_scan

    first = sorted(os.listdir(tree))[0]
    (tree / first / "notes.txt").write_text("labels by hand")
    (tree / first / ".DS_Store").write_bytes(b"\0")
    images = scan_folder(str(tree))
    assert len(images.ignored) == 2 and "ignored 2 non-image file(s)" in describe_scan(images)


def test_a_non_utf8_file_name_is_named_not_a_dali_error(tree):
    first = sorted(os.listdir(tree))[0]
    source = tree / first / sorted(os.listdir(tree / first))[0]
    bad = os.fsencode(str(tree / first)) + b"/caf\xe9.jpg"  # Latin-1 é: not UTF-8
    shutil.copyfile(source, bad)
    with pytest.raises(BadImageError, match=r"caf\\xe9\.jpg: file name is not valid UTF-8"):
        scan_folder(str(tree))
    images = scan_folder(str(tree), on_bad="skip")
    assert len(images) == 20 and len(images.skipped) == 1
    pytest.importorskip("nvidia.dali")
    from fastpolicy.loader import FileChecks, PolicyDALILoader

    loader = PolicyDALILoader(
        str(tree), batch_size=4, M=1, image_size=32, device="cpu", checks=FileChecks(on_bad="skip")
    )
    assert next(iter(loader)).images.shape == (4, 3, 32, 32)


def write_big_png(path, side: int = 20000) -> None:
    """A real 1-bit PNG of side × side pixels (about 0.4 MB on disk, gigabytes decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + side // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    with open(path, "wb") as handle:
        handle.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", data)
            + chunk(b"IEND", b"")
        )


def test_an_image_over_the_pixel_limit_is_refused_without_decoding(tmp_path, tree, capsys):
    big = tmp_path / "big.png"
    write_big_png(big)
    assert big.stat().st_size < 1_000_000
    assert "20000×20000 = 400000000 pixels, more than the limit of 89478485" in header_problem(str(big))
    assert header_problem(str(big), max_pixels=None) is None
    first = sorted(os.listdir(tree))[0]
    shutil.copy(big, tree / first / "big.png")
    with pytest.raises(BadImageError, match=r"big\.png: 20000×20000"):
        check_files(scan_folder(str(tree)))
    kept = check_files(scan_folder(str(tree)), on_bad="skip")
    assert len(kept) == 20 and kept.skipped[0][0].endswith("big.png")
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(tree, data / "train")
    shutil.copytree(tree, data / "val")
    one_line_error(
        capsys,
        [
            "train",
            "--data",
            str(data),
            "--model",
            "small_cnn",
            "--batch",
            "4",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cpu",
        ],
        "big.png",
        "20000×20000",
    )
