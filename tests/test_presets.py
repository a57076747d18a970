"""Presets: each written once with its variants derived, and every value pinned.

``presets_expected.json`` was generated from the presets as they were before they were
rewritten as base presets with derived variants; a change to any value fails here.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from fastpolicy.train.presets import AWS_STAGES, PRESETS, get_preset

EXPECTED = json.loads((Path(__file__).parent / "presets_expected.json").read_text())


def as_json(settings) -> dict:
    """The dataclass's fields as JSON would carry them (tuples become lists)."""
    return json.loads(json.dumps(asdict(settings)))


def test_every_preset_value_is_pinned():
    assert list(PRESETS) == list(EXPECTED["presets"])  # also the order of the CLI's choices
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert as_json(preset) == EXPECTED["presets"][name], name
    assert all(isinstance(p.milestones, tuple) for p in PRESETS.values())


def test_every_aws_budget_is_pinned():
    assert {name: as_json(stages) for name, stages in AWS_STAGES.items()} == EXPECTED["aws_stages"]


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="'imagenet_resnet51'.*imagenet_resnet50"):
        get_preset("imagenet_resnet51")
