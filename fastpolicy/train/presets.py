"""Named training presets: the paper's Table 7 settings, and a short Fashion-MNIST default.

``batch`` is N, distinct images per step over all processes (the enlarged batch is M·N);
``lr`` is for that global batch. ``schedule``: ``"cosine"`` (to 0 over the epochs) or
``"step"`` (× ``gamma`` at ``milestones``). ``width``: the small CNN's width (channels of its
first convolution; None: the model's own, 32); other models have a fixed width. ``cutout``:
side in pixels of a Cutout square applied to every copy after its policy (AutoAugment's standard
CIFAR pipeline: 16; 0: none). ``controller_window``: batches per controller update of an
adversarial search (0: one epoch, the paper's); ``probe_every``: controller updates between two
probes of its distributions (``controller_updates.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    """One training recipe (see the module docstring for units)."""

    name: str
    model: str
    dataset: str
    batch: int
    M: int
    lr: float
    weight_decay: float
    epochs: int
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    image_size: int = 224
    width: int | None = None
    cutout: int = 0
    train_subset: int | None = None
    val_subset: int | None = None
    controller_window: int = 0
    probe_every: int = 1
    doc: str = ""

    def with_(self, **changes) -> Preset:
        """A copy with ``changes`` (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _variant(base: Preset, name: str, doc: str, **changes) -> Preset:
    """``base`` renamed, re-documented and with ``changes`` (None values included, unlike
    :meth:`Preset.with_`): how every preset but a base one is written."""
    return replace(base, name=name, doc=doc, **changes)


_FASHION_MNIST = Preset(
    "fashion_mnist",
    "small_cnn",
    "fashion_mnist",
    batch=64,
    M=8,
    lr=0.05,
    weight_decay=5e-4,
    epochs=3,
    image_size=28,
    train_subset=4096,
    val_subset=2000,
    controller_window=1,
    probe_every=8,
    doc="the embedded default: a short search on a Fashion-MNIST subset, minutes on a CPU; one controller "
    "update per batch (the paper: per epoch), so three epochs are enough updates for the controller to move",
)
_FASHION_MNIST_LONG = _variant(
    _FASHION_MNIST,
    "fashion_mnist_long",
    "a small-data regime: 1 024 training images for 80 epochs (cosine), all 10 000 test images; the "
    "studies take their images, epochs and width from the regime sweep (benchmarks/results/reproduce/regime.json)",
    epochs=80,
    train_subset=1024,
    val_subset=None,
)
_FOLDER = Preset(
    "folder",
    "small_cnn",
    "folder",
    batch=64,
    M=4,
    lr=0.05,
    weight_decay=5e-4,
    epochs=15,
    image_size=64,
    doc="your own images (a folder of class folders, train/ and val/, or shards): the small CNN; with --data "
    "and no --preset, batch and image size are fitted to the data (fastpolicy.train.fit)",
)
_CIFAR10_WRN = Preset(
    "cifar10_wrn28_10",
    "wrn_28_10",
    "cifar10",
    batch=128,
    M=8,
    lr=0.1,
    weight_decay=5e-4,
    epochs=200,
    schedule="step",
    milestones=(60, 120, 160),
    image_size=32,
    cutout=16,
    doc="Adversarial AutoAugment, Table 7: CIFAR-10 WRN-28-10, batch 128·8, lr 0.1, wd 5e-4, 200 epochs; "
    "Cutout 16×16 after the policy (AutoAugment's CIFAR pipeline)",
)
_IMAGENET_RESNET50 = Preset(
    "imagenet_resnet50",
    "resnet50",
    "imagenet",
    batch=2048,
    M=8,
    lr=0.8,
    weight_decay=1e-4,
    epochs=120,
    image_size=224,
    doc="Adversarial AutoAugment, Table 7: ImageNet ResNet-50, batch 2048·8, lr 0.8, wd 1e-4, 120 epochs, cosine",
)

PRESETS = {
    p.name: p
    for p in (
        _FASHION_MNIST,
        _FOLDER,
        _FASHION_MNIST_LONG,
        _variant(
            _FASHION_MNIST_LONG,
            "fashion_mnist_long_step",
            "fashion_mnist_long with Table 4's baseline schedule: × 0.2 at 30, 60 and 80 % of training",
            schedule="step",
            milestones=(24, 48, 64),
        ),
        _CIFAR10_WRN,
        _variant(
            _CIFAR10_WRN,
            "cifar10_resnet18",
            "CIFAR ResNet-18 with the WRN recipe (Cutout 16×16 after the policy)",
            model="resnet18_cifar",
        ),
        _IMAGENET_RESNET50,
        *(
            _variant(
                _IMAGENET_RESNET50,
                f"imagenet_{model}",
                f"Adversarial AutoAugment, Table 7: ImageNet {label} with the ResNet-50 recipe",
                model=model,
            )
            for model, label in (("resnet50d", "ResNet-50-D"), ("resnet200", "ResNet-200"))
        ),
    )
}
"""Preset name → :class:`Preset`."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError names it and lists the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass(frozen=True)
class AWSStages:
    """AWS's search budget for a preset (Tian et al., 2020, Algorithm 1).

    Attributes:
        stage1_epochs: epochs of shared-weight training with the uniform policy.
        loops: stage-2 iterations T_max (each: reload, fine-tune, validate, PPO update).
        finetune_epochs: fine-tuning epochs per loop, at a constant learning rate.
        finetune_lr_scale: that learning rate as a fraction of the preset's ``lr`` (the
            paper says "small" without a number; 0.1 is fastpolicy's choice).
        val_count: training images held out as the search's validation split.
        agent_lr: the policy's Adam learning rate (the official code: 0.1 on CIFAR, 0.2 on ImageNet).
    """

    stage1_epochs: int
    loops: int
    finetune_epochs: int
    finetune_lr_scale: float
    val_count: int
    agent_lr: float = 0.1


_AWS_BY_DATASET = {
    "cifar10": AWSStages(200, 500, 10, 0.1, 5000),
    "imagenet": AWSStages(150, 500, 5, 0.1, 50000, agent_lr=0.2),
}
AWS_STAGES = {
    "fashion_mnist": AWSStages(stage1_epochs=4, loops=12, finetune_epochs=1, finetune_lr_scale=0.1, val_count=1024),
    "folder": AWSStages(stage1_epochs=8, loops=12, finetune_epochs=1, finetune_lr_scale=0.1, val_count=512),
    **{p.name: _AWS_BY_DATASET[p.dataset] for p in PRESETS.values() if p.dataset in _AWS_BY_DATASET},
}
"""Preset name → :class:`AWSStages` (the paper's 200/150 shared epochs, 500 loops, 10/5
fine-tuning epochs, policy learning rate 0.1 on CIFAR and 0.2 on ImageNet as in the official
code; a few-minute CPU budget for ``fashion_mnist``)."""
