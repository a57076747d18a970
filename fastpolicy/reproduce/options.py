"""The settings of ``fastpolicy reproduce adversarial|aws|dry-run``, one dataclass each; every field is
a flag (:func:`fastpolicy.config.add_field_flags`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import device_setting, positive_int, progress_setting, setting, threads_setting, validate
from ..train.presets import PRESETS


@dataclass
class StudyOptions:
    """A small-scale reproduction (``adversarial``, ``aws``)."""

    budget: str = setting(
        "full",
        "full: the committed study (up to 2 hours alone on a 2-core CPU); smoke: a CI-sized check, 20 s to a minute",
        choices=("full", "smoke"),
    )
    out: str | None = setting(None, "the study's run folders", shown="runs/reproduce/<study>")
    results: str | None = setting(None, "where the JSON, table and plot go", shown="--out")
    num_threads: int = threads_setting("CPU threads of each run: DALI's and torch's (1 lets two studies share 2 cores)")
    progress: bool = progress_setting()

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class SeededStudyOptions(StudyOptions):
    """A study on paired seeds (``regime``, ``adversarial``, ``aws``)."""

    seeds: int | None = setting(None, "seeds per arm", type=positive_int, shown="the budget's")
    regime: str | None = setting(
        None,
        "the regime sweep's record a full adversarial or AWS study reads its cell from (a sweep of your own: "
        "its regime.json)",
        shown="benchmarks/results/reproduce/regime.json",
    )


@dataclass
class DryRunOptions:
    """A preset's whole pipeline on a generated ImageNet-layout tree, a few steps."""

    preset: str = setting("imagenet_resnet50", "the recipe to check", choices=sorted(PRESETS))
    search: str = setting("adversarial", "the run to try", choices=("adversarial", "aws", "train"))
    out: str | None = setting(None, "where the tree and the run go", shown="runs/reproduce/dry-run-<preset>")
    batch: int = setting(4, "global N for the tiny tree (the preset's learning rate scales with it)", type=positive_int)
    M: int | None = setting(None, "copies (policies) per image", type=positive_int, shown="the preset's")
    device: str | None = device_setting()
    progress: bool = progress_setting()

    def __post_init__(self) -> None:
        validate(self)


__all__ = ["DryRunOptions", "SeededStudyOptions", "StudyOptions"]
