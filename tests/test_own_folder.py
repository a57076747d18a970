"""Your own folder with one flag (issue 36, item 1): a plain folder of class folders is split and
trained on, --data picks the folder preset fitted to the images and says so in one line, --lr and
--image-size are flags, and a preset's options that do not apply to the data are ignored with a
warning. Tested on a 32-image folder, a 1 000-image folder and a shard set."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import yaml

from fastpolicy.data.photo_tree import make_photo_tree
from fastpolicy.train import data, fit

pytest.importorskip("nvidia.dali")


@pytest.fixture(scope="module")
def folder32(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("own") / "pets")
    make_photo_tree(root, classes=2, per_class=16, size=(100, 75))
    return root


def test_the_held_out_split_is_per_class_seeded_and_disjoint():
    labels = np.repeat(np.arange(3), [10, 2, 1])  # a class of one stays in training
    train, val = data.held_out(labels, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(13)) and not set(train) & set(val)
    assert np.bincount(labels[val], minlength=3).tolist() == [1, 1, 0]
    assert data.held_out_count(labels) == 2
    again, other = data.held_out(labels, seed=0), data.held_out(labels, seed=1)
    assert np.array_equal(again[1], val) and not np.array_equal(other[1], val)


def test_the_fit_follows_the_images(folder32, tmp_path):
    small = fit.fit_to_data(folder32)
    assert small.images == 32 - 4 and small.batch == 4 and small.median_side in range(66, 84)
    assert fit.fit_to_data(folder32, val_data="elsewhere").images == 32  # nothing held out of it then
    assert fit.fit_to_data(folder32, search=True).images == 32 - 3  # AWS holds val_count (a tenth) out
    assert small.image_size == 64  # the median side (≈ 75 px) rounded down to 8, capped at 64
    big = str(tmp_path / "big")
    make_photo_tree(big, classes=4, per_class=250, size=(40, 30))
    fitted = fit.fit_to_data(big)
    assert fitted.images == 1000 - 4 * 25 and fitted.batch == 64 and fitted.image_size == 24
    assert fitted.val_count == 100 and "preset folder" in fitted.describe(big)


def test_a_shard_set_is_fitted_by_its_count(photo_tree, tmp_path):
    from fastpolicy.data.shards import write_shards

    write_shards(photo_tree, str(tmp_path / "shards"), "webdataset", 8, progress=False)
    fitted = fit.fit_to_data(str(tmp_path / "shards"))
    assert fitted.images == 20 and fitted.batch == 4 and fitted.image_size == 64 and fitted.median_side is None


def test_a_class_folder_searches_and_trains_with_one_flag(folder32, tmp_path, capsys):
    from fastpolicy.cli import main

    out = tmp_path / "search"
    assert main(["search", "adversarial", "--data", folder32, "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "preset folder: the small CNN at 64 px, batch 4" in text and "--preset imagenet_resnet50" in text
    assert "is a folder of 2 classes: 4 of its 32 images" in text
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["preset"], config["batch"], config["image_size"], config["model"]) == ("folder", 4, 64, "small_cnn")
    assert json.loads((out / "summary.json").read_text())["preset"]["image_size"] == 64
    trained = tmp_path / "train"
    argv = ["train", "--data", folder32, "--epochs", "1", "--lr", "0.01", "--image-size", "32", "--out", str(trained)]
    assert main([*argv, "--no-progress"]) == 0
    config = yaml.safe_load((trained / "config.yaml").read_text())
    assert (config["lr"], config["image_size"], config["batch"]) == (0.01, 32, 4)
    capsys.readouterr()
    assert main([*argv[:-2], "--out", str(tmp_path / "subset"), "--subset", "8", "--no-progress"]) == 2
    assert "--subset/--val-subset apply to Fashion-MNIST and CIFAR" in capsys.readouterr().err  # the user's: refused
    assert not (tmp_path / "subset").exists()


def test_a_presets_subsets_are_ignored_with_a_warning_on_a_folder(folder32, caplog):
    from fastpolicy.train.data import build_loaders

    caplog.set_level(logging.WARNING, logger="fastpolicy")
    train, val, classes, _ = build_loaders(folder32, 4, 1, 32, "cpu", 0, train_subset=4096, val_subset=2000)
    assert "ignored for" in caplog.text and classes == 2 and len(train.dataset) == 28 and len(val.dataset) == 4


def _with_a_truncated_image(src: str, dst) -> str:
    import shutil

    from PIL import Image

    shutil.copytree(src, dst)
    jpeg = sorted((dst / "class000").iterdir())[3]
    victim = jpeg.with_suffix(".png")
    Image.open(jpeg).save(victim)
    jpeg.unlink()
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # cut mid-data: its header still reads
    return str(victim)


def test_a_truncated_image_costs_one_warning_with_on_bad_skip(folder32, tmp_path, capsys):
    from fastpolicy.cli import main
    from fastpolicy.data.files import header_problem

    victim = _with_a_truncated_image(folder32, tmp_path / "pets")
    assert header_problem(victim) is None  # the default --verify header lets it through
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "pets"), "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main([*argv, "--on-bad", "skip"]) == 0
    text = capsys.readouterr().out
    assert "decoding each of the 28 files once" in text  # the training part; then the held-out part's 4
    assert [line for line in text.splitlines() if victim in line] == [
        f"fastpolicy: image list: skipped 1 bad file(s) (e.g. {victim}: cannot decode: image file is truncated)"
    ]  # one warning line, and the run goes on
    assert (out / "summary.json").exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(folder32, tmp_path, capsys):
    from fastpolicy.cli import main

    _with_a_truncated_image(folder32, tmp_path / "pets")
    out = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "pets"), "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main([*argv, "--verify", "none"]) == 2  # DALI meets the bad file mid-epoch
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "img0003.png" in err and "--on-bad skip (on_bad='skip' in Python)" in err
    assert not out.exists()  # nothing left: the same command runs again (and is refused the same way)
    assert main([*argv, "--verify", "none"]) == 2 and "already holds" not in capsys.readouterr().err
