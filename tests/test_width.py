"""The small CNN's width as a setting: built at the width asked, refused for fixed networks,
recorded in the resolved config (what config.yaml and a run's summary say)."""

from __future__ import annotations

import pytest

from fastpolicy.train.adversarial import AdversarialConfig
from fastpolicy.train.aws import AWSConfig
from fastpolicy.train.final import TrainConfig
from fastpolicy.train.models import SMALL_CNN_WIDTH, build_model, effective_width


@pytest.mark.parametrize("width", [None, 8, 64])
def test_the_small_cnn_is_built_at_its_width(width):
    model = build_model("small_cnn", 10, 1, width)
    first = model.features[0]
    assert first.out_channels == (width or SMALL_CNN_WIDTH)
    assert model.head.in_features == 4 * (width or SMALL_CNN_WIDTH)


def test_a_fixed_network_refuses_a_width():
    with pytest.raises(ValueError, match="only small_cnn has a width.*'resnet50'"):
        build_model("resnet50", 10, 3, 64)
    with pytest.raises(ValueError, match="only small_cnn has a width"):
        TrainConfig(out="x", preset="imagenet_resnet50", width=64).base_preset()
    assert effective_width("resnet50", None) is None


@pytest.mark.parametrize("config_class", [TrainConfig, AdversarialConfig])
def test_the_width_is_recorded_in_the_resolved_config(config_class):
    assert config_class(out="x").resolved_config().width == SMALL_CNN_WIDTH
    config = config_class(out="x", width=48)
    assert config.resolved_preset().width == 48 and config.resolved_config().width == 48


def test_aws_takes_the_width_too():
    config = AWSConfig(out="x", width=16)
    assert config.resolved()[0].width == 16 and config.resolved_config().width == 16
    assert AWSConfig(out="x").resolved_config().width == SMALL_CNN_WIDTH


def test_the_width_is_a_flag():
    from fastpolicy.cli import build_parser

    args = build_parser().parse_args(["train", "--width", "64"])
    assert args.width == 64
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--width", "0"])


def test_the_fill_follows_the_data_unless_given(tmp_path):
    from fastpolicy.train.aws import AWSSearch

    assert TrainConfig(out="x").resolved_fill() == 0  # Fashion-MNIST: black background
    assert TrainConfig(out="x").resolved_config().fill == 0
    assert TrainConfig(out="x", data=str(tmp_path)).resolved_fill() == 128  # other data: AutoAugment's grey
    assert TrainConfig(out="x", fill=200).resolved_fill() == 200
    assert AWSConfig(out="x").resolved_config().fill == 0
    pytest.importorskip("nvidia.dali")
    search = AWSSearch(
        AWSConfig(
            out=str(tmp_path / "aws"), fill=7, train_subset=64, val_count=32, batch=32, device="cpu", progress=False
        )
    )
    assert search.train_loader.augment.fill == 7  # AWS's own loaders fill as asked (they once ignored --fill)
