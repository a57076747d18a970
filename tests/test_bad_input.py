"""Every bad input gets one clear message naming it, and loses nothing: flags, folders, images,
policy files, and the native code caches."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import zlib

import numpy as np
import pytest

from fastpolicy import AWSDistribution, Policy
from fastpolicy.cli import main
from fastpolicy.data.files import BadImageError, check_files, header_problem, scan_folder
from fastpolicy.jsonio import PolicyFormatError, read_json
from fastpolicy.policies import load_policy_file


def one_line_error(capsys, argv, *expected):
    """Run ``fastpolicy argv`` in this process; it must exit 2 with one stderr line containing ``expected``."""
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


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["search", "adversarial", "--subset", "-100"], "--subset: -100 is not positive"),
        (["search", "adversarial", "--epochs", "-1"], "--epochs: -1 is not positive"),
        (["search", "adversarial", "--threads", "0"], "--threads: 0 is not positive"),
        (["search", "adversarial", "--batch", "0"], "--batch: 0 is not positive"),
        (["search", "adversarial", "--M", "two"], "--M: 'two' is not an integer"),
        (["search", "aws", "--loops", "0"], "--loops: 0 is not positive"),
        (["search", "aws", "--finetune-lr", "nan"], "--finetune-lr: nan is not"),
        (["train", "--seed", "-1"], "--seed: -1 is not ≥ 0"),
        (["train", "--max-pixels", "0"], "--max-pixels: 0 is not positive"),
        (["reproduce", "dry-run", "--batch", "-2"], "--batch: -2 is not positive"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_bad_numbers_are_refused_in_one_line(capsys, argv, flag):
    one_line_error(capsys, argv, flag)


def test_missing_paths_and_bad_policy_files_are_named(capsys, tmp_path):
    out = str(tmp_path / "run")
    one_line_error(capsys, ["train", "--data", str(tmp_path / "nowhere"), "--out", out], "nowhere", "no such folder")
    bad = tmp_path / "policy.json"
    bad.write_text('{"format": []}')
    one_line_error(capsys, ["train", "--policy", str(bad), "--out", out], "policy.json", "'format' is []")
    one_line_error(capsys, ["search", "adversarial", "--resume", "--out", out], "no run to continue", out)
    assert not os.path.exists(out)  # nothing was created by a refused run


def test_debug_shows_the_traceback(capsys, tmp_path):
    assert main(["--debug", "train", "--policy", str(tmp_path / "none.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("no such file")


# -- folders -------------------------------------------------------------------------------


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


# -- policies ------------------------------------------------------------------------------


def test_extreme_finite_theta_gives_finite_probabilities(tmp_path):
    theta2 = np.zeros((36, 36))
    theta2[:, :5] = -1000.0
    theta2[3] = -1000.0  # a whole row underflows: sigmoid is 0 everywhere, the plain ratio 0/0
    path = tmp_path / "theta.json"
    AWSDistribution(np.full(36, 800.0), theta2).save(path)
    loaded = load_policy_file(str(path))
    _p1, p2 = loaded.probabilities()
    assert np.all(np.isfinite(p2)) and np.allclose(p2.sum(axis=1), 1) and np.allclose(p2[3], 1 / 36)
    assert np.all(p2[0, :5] < 1e-300) and np.isfinite(loaded.entropy())
    pairs = loaded.sample_pairs(2000, np.random.default_rng(0))
    assert not np.any(np.isin(pairs[pairs[:, 0] != 3, 1], range(5)))
    assert np.all(np.isfinite(loaded.log_prob(pairs)))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        (b'{"format": "fastpolicy.policy", "space": "caf\xe9"}', "not UTF-8 text"),
        (b'{"format": []}', "'format' is []"),
        (b'{"format": {"a": 1}}', "'format' is {'a': 1}"),
        (b'{"format": "fastpolicy.aws_distribution", "version": 1, "elements": 3}', "'elements' must be list"),
        (b'{"format": "fastpolicy.aws_distribution", "version": 1, "elements": [], "theta1": NaN}', "NaN"),
        (
            b'{"format": "fastpolicy.policy", "version": 1, "space": "adversarial", "sub_policies": [[{"op": "Rotate", '
            b'"bin": 99}]]}',
            "bin",
        ),
        (b'{"format": "fastpolicy.schedule", "version": 1, "epochs": [{"epoch": 0, "policies": [[]]}]}', "policies[0]"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"", "not valid JSON"),
    ],
    ids=["deep", "latin1", "format-list", "format-dict", "elements-int", "nan", "bin", "schedule", "bom16", "empty"],
)
def test_malformed_policy_files_raise_policy_format_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(PolicyFormatError, match="p\\.json") as error:
        load_policy_file(str(path))
    assert message in str(error.value)
    for kind in (Policy, AWSDistribution):
        with pytest.raises(PolicyFormatError, match="p\\.json"):
            kind.load(path)


def test_policy_files_have_a_size_cap(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"format": "x", "pad": "y" * 200}))
    with pytest.raises(PolicyFormatError, match=r"big\.json: \d+ bytes, more than a policy file may hold \(100\)"):
        read_json(path, max_bytes=100)


# -- native code ---------------------------------------------------------------------------


def test_kernel_source_inlines_every_kernel_file(tmp_path, monkeypatch):
    """CuPy caches binaries by the code string; with ``#include`` in it, an edited kernel file
    kept the stale binary. The string must hold every file, so any edit changes it."""
    from fastpolicy.backends import kernel_ops

    copy = tmp_path / "kernels"
    shutil.copytree(kernel_ops.KERNEL_DIR, copy)
    monkeypatch.setattr(kernel_ops, "KERNEL_DIR", copy)
    source = kernel_ops.kernel_source()
    assert '#include "' not in source
    for name in ("policy.cu", "stats.cu", "luts.cu", "apply.cu", "common.cuh"):
        assert f'#line 1 "{name}"' in source
    assert source.count('#line 1 "common.cuh"') == 1  # included three times, inlined once
    with open(copy / "common.cuh", "a") as handle:
        handle.write("\n// an edit\n")
    assert kernel_ops.kernel_source() != source


def test_emulator_cache_is_private_and_untrusted_libraries_are_rebuilt(tmp_path, monkeypatch):
    from fastpolicy.backends import kernel_build

    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    kernel_build.emulated_module.cache_clear()
    try:
        library = kernel_build.emulated_module().library
        folder = library.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert kernel_build.trusted_library(library)
        for tamper in (
            lambda: os.chmod(library, 0o666),
            lambda: os.chown(library, 12345, -1) if os.getuid() == 0 else os.chmod(library, 0o622),
        ):
            tamper()
            folder.chmod(0o777)
            assert not kernel_build.trusted_library(library)
            inode = library.stat().st_ino
            kernel_build.emulated_module.cache_clear()
            rebuilt = kernel_build.emulated_module().library
            assert rebuilt == library and library.stat().st_ino != inode and kernel_build.trusted_library(library)
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        link = tmp_path / "elsewhere.so"
        shutil.copy(library, link)
        library.unlink()
        library.symlink_to(link)
        assert not kernel_build.trusted_library(library)  # a link is never loaded
    finally:
        kernel_build.emulated_module.cache_clear()
