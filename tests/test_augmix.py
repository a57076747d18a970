"""AugMix per sample: its law against torchvision's AugMix, its mix against torchvision's code,
every chain exact against the reference, in the transform and through the loader's stages."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import photo_batch, photos
from torchvision import tv_tensors
from torchvision.transforms import v2

from fastpolicy import OP_NAMES, reference
from fastpolicy.augmix import DEPTHS, AugMix
from fastpolicy.backends.protocol import finish
from fastpolicy.policies import resolve, sampler_from_dict
from fastpolicy.transforms import PolicyAugment

HEIGHT, WIDTH = 36, 45
DRAWS = 3000
"""Images per law test: each op's share of ~7 000 chain steps is then known to ±0.4% (1 SE)."""
SE = 5.0
"""Tolerance of every frequency and mean: 5 standard errors."""


def _ours(sampler: AugMix, draws: int):
    """Our chains' steps as (op, |value| in torchvision's units), depths, and weights."""
    params = sampler.sample(draws, np.random.default_rng(11))
    steps, depths = [], []
    for chain in params.chains():
        depths.extend((chain.op >= 0).sum(axis=1).tolist())
        for op, value in zip(chain.op.ravel(), chain.value.ravel()):
            if op < 0:
                continue
            name = OP_NAMES[op]
            if name.startswith("Translate"):
                value = value * (WIDTH if name.endswith("X") else HEIGHT)
            elif name == "Solarize":
                value = value / 255
            elif name in ("Brightness", "Color", "Contrast", "Sharpness"):
                value = value - 1
            steps.append((name, round(abs(float(value)), 4)))
    return steps, depths, params.mix


def _theirs(kwargs: dict, draws: int, monkeypatch):
    """torchvision's AugMix on ``draws`` images, its ops, chain depths and weights recorded (a
    chain starts where an op is handed the original image again)."""
    transform = v2.AugMix(**kwargs)
    steps: list = []
    depths: list[int] = []
    sampled: list = []
    origin: list = []

    def record(image, name, magnitude, interpolation, fill):
        if not origin:
            origin.append(image)
        if image is origin[0]:
            depths.append(0)
        depths[-1] += 1
        steps.append((name, round(abs(float(magnitude)), 4)))
        return image.clone()

    def dirichlet(alpha):
        sampled.append(torch._sample_dirichlet(alpha))
        return sampled[-1]

    monkeypatch.setattr(transform, "_apply_image_or_video_transform", record)
    monkeypatch.setattr(transform, "_sample_dirichlet", dirichlet)
    image = torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8)
    torch.manual_seed(5)
    weights = []
    for _ in range(draws):
        sampled.clear()
        origin.clear()
        transform(image)
        m, w = sampled
        weights.append(torch.cat([m[:, :1], w * m[:, 1:]], 1)[0].numpy())
    return steps, depths, np.array(weights)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"severity": 7, "mixture_width": 2, "chain_depth": 2, "alpha": 0.5, "all_ops": False}],
    ids=["defaults", "severity7-width2-depth2-alpha0.5-partial"],
)
def test_the_law_is_torchvisions(kwargs, monkeypatch):
    """The same support of (op, magnitude) pairs, each op's share and each magnitude's share
    within 5 standard errors, the same chain depths, and the same weight means (both drawn
    from Dirichlet distributions: m₀ has mean ½, each chain's share (1 − m₀) / W)."""
    ours_steps, ours_depths, ours_weights = _ours(AugMix(**kwargs), DRAWS)
    theirs_steps, theirs_depths, theirs_weights = _theirs(kwargs, DRAWS, monkeypatch)
    assert set(ours_steps) == set(theirs_steps)
    for counts_a, counts_b, total_a, total_b in [
        (Counter(s[0] for s in ours_steps), Counter(s[0] for s in theirs_steps), len(ours_steps), len(theirs_steps)),
        (Counter(ours_steps), Counter(theirs_steps), len(ours_steps), len(theirs_steps)),
        (Counter(ours_depths), Counter(theirs_depths), len(ours_depths), len(theirs_depths)),
    ]:
        for key in set(counts_a) | set(counts_b):
            p_a, p_b = counts_a[key] / total_a, counts_b[key] / total_b
            se = math.sqrt(p_a * (1 - p_a) / total_a + p_b * (1 - p_b) / total_b) or 1e-9
            assert abs(p_a - p_b) <= SE * se + 1e-12, (key, p_a, p_b)
    depth = kwargs.get("chain_depth", -1)
    assert set(ours_depths) == ({depth} if depth > 0 else set(DEPTHS))
    assert ours_weights.shape == theirs_weights.shape
    np.testing.assert_allclose(ours_weights.sum(axis=1), 1, atol=1e-5)
    se = np.sqrt(ours_weights.var(axis=0) / DRAWS + theirs_weights.var(axis=0) / DRAWS)
    assert np.all(np.abs(ours_weights.mean(axis=0) - theirs_weights.mean(axis=0)) <= SE * se)
    assert np.all(np.abs(ours_weights.std(axis=0) - theirs_weights.std(axis=0)) <= 0.02)


def test_the_mix_is_torchvisions_arithmetic(monkeypatch):
    """torchvision's AugMix code, handed our chains' images (the reference's) and our weights
    (its Beta draw as (m₀, 1), its Dirichlet draw as our chain weights), gives our pixels."""
    image = torch.from_numpy(np.ascontiguousarray(photos()["astronaut"][:HEIGHT, :WIDTH])).permute(2, 0, 1)
    transform = PolicyAugment(AugMix(chain_depth=2, severity=8), generator=torch.Generator().manual_seed(3))
    for _ in range(8):
        params = transform.make_params([image])
        ours = transform.transform(image, params)
        outputs = []
        for chain in params["chains"]:
            out = image.permute(1, 2, 0).numpy()
            for op in chain[0]:
                out = reference.apply_value(OP_NAMES[op.op], out, op.value, fill=0)
            outputs.append(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1))
        theirs = v2.AugMix(mixture_width=len(outputs), chain_depth=1)
        weights = params["mix"]
        chains = iter(outputs)
        draws = iter([torch.tensor([[weights[0, 0], 1.0]]), torch.from_numpy(weights[:, 1:])])
        monkeypatch.setattr(theirs, "_apply_image_or_video_transform", lambda *args, chains=chains, **kw: next(chains))
        monkeypatch.setattr(theirs, "_sample_dirichlet", lambda alpha, draws=draws: next(draws))
        assert torch.equal(ours, theirs(image))


def test_every_chain_is_exact_against_the_reference():
    """The transform's output on a PIL image, a uint8 tensor, a float tensor and a batch equals
    the reference's (each chain's ops, the float32 mix) for the parameters it drew."""
    image = np.ascontiguousarray(photos()["chelsea"][:HEIGHT, :WIDTH])
    batch = photo_batch(4, HEIGHT, WIDTH)
    for seed in range(5):
        for inpt, images in [
            (PIL.Image.fromarray(image), image[None]),
            (torch.from_numpy(image).permute(2, 0, 1), image[None]),
            (tv_tensors.Image(torch.from_numpy(batch).permute(0, 3, 1, 2)), batch),
        ]:
            transform = PolicyAugment(AugMix(severity=10), generator=torch.Generator().manual_seed(seed))
            drawn = PolicyAugment(AugMix(severity=10), generator=torch.Generator().manual_seed(seed))
            params = drawn.sample(len(images), drawn._rng())  # the NumPy generator the call draws from
            expected = reference.apply_batch(images, params, fill=0)  # the standard policies fill with 0
            out = transform(inpt)
            got = (
                np.asarray(out)[None]
                if isinstance(out, PIL.Image.Image)
                else out.permute(*range(out.dim() - 3), -2, -1, -3).numpy()
            )
            np.testing.assert_array_equal(got.reshape(expected.shape), expected)
    floats = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    out = PolicyAugment("augmix", generator=torch.Generator().manual_seed(1))(floats)
    levels = PolicyAugment("augmix", generator=torch.Generator().manual_seed(1))(
        torch.from_numpy(image).permute(2, 0, 1)
    )
    assert out.dtype == torch.float32 and torch.equal(out, levels.float() / 255)


@pytest.mark.parametrize("backend", ["native", "dali", "numpy"])
@pytest.mark.parametrize("output", ["uint8", "float"])
def test_the_loader_mixes_on_every_stage_as_the_reference(backend, output):
    pytest.importorskip("nvidia.dali")
    from fastpolicy.loader import Augment, Pipeline, PolicyDALILoader

    images = photo_batch(16, 28, 28)
    labels = np.arange(16) % 10
    loader = PolicyDALILoader.from_arrays(
        images,
        labels,
        batch_size=4,
        M=2,
        output=output,
        policies=AugMix(severity=6),
        augment=Augment(baseline="none", backend=backend, slots=3),
        pipeline=Pipeline(shuffle=False),
    )
    reference_loader = PolicyDALILoader.from_arrays(
        images,
        labels,
        batch_size=4,
        M=2,
        output="uint8",
        policies=AugMix(severity=6),
        augment=Augment(baseline="none", backend="numpy", slots=3),
        pipeline=Pipeline(shuffle=False),
    )
    for batch, ref in zip(loader, reference_loader):
        assert batch.params.mix is not None and batch.params == ref.params
        originals = np.concatenate([images[batch.indices]] * 2)
        expected = reference.apply_batch(originals, batch.params)
        np.testing.assert_array_equal(ref.images.permute(0, 2, 3, 1).numpy(), expected)
        want = finish(torch.from_numpy(expected), loader.output_spec)  # uint8 as is, or normalized
        assert batch.images.dtype == want.dtype and torch.equal(batch.images, want)


def test_settings_round_trip_and_refusals():
    sampler = resolve("augmix:5,2,1")
    assert sampler == AugMix(severity=5, mixture_width=2, chain_depth=1)
    assert sampler_from_dict(sampler.to_dict()) == sampler
    with pytest.raises(ValueError, match="severity must be an integer in \\[1, 10\\]"):
        AugMix(severity=11)
    with pytest.raises(ValueError, match="alpha must be a number > 0"):
        AugMix(alpha=0)
    assert resolve("augmix-m5-w4-d2").mixes  # timm's AugMix: a string of its own (test_timm_strings.py)
    boxes = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(8, 8))
    with pytest.raises(TypeError, match="cannot follow them"):
        PolicyAugment("augmix")(tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8)), boxes)
    pytest.importorskip("nvidia.dali")
    from fastpolicy.loader import PolicyDALILoader

    loader = PolicyDALILoader.from_arrays(np.zeros((8, 4, 4), np.uint8), np.zeros(8, np.int64), batch_size=2, M=2)
    with pytest.raises(ValueError, match="AugMix cannot share a batch"):
        loader.set_policies([AugMix(), resolve("randaugment")])
    with pytest.raises(ValueError, match=r"chains of up to 3 ops.*Augment\(slots=3\)"):
        loader.set_policies(AugMix())
    loader.set_policies(AugMix(chain_depth=2))  # two slots: the loader's default


def test_parameters_with_a_mix_are_checked_and_kept_whole():
    """Zero images sample; AugMix's rows pair no partner (a subset stays valid); weights that
    would leave 0..255, a fractional or boolean chain_slots and a non-bool mix_blend are refused."""
    from fastpolicy.params import PolicyParams
    from fastpolicy.timm_strings import parse

    for sampler in (AugMix(), parse("augmix-m5-w4")):
        assert sampler.sample(0, np.random.default_rng(0)).n == 0
        params = sampler.sample(6, np.random.default_rng(1))
        part = params.take(slice(2, 5))
        assert part.n == 3 and part.mix.shape[0] == 3 and part.mix_blend == params.mix_blend
    params = AugMix(mixture_width=2, chain_depth=1).sample(3, np.random.default_rng(2))
    fields = params.arrays()
    for changes, message in [
        ({"mix": params.mix * 1.5}, "sum to at most 1"),
        ({"chain_slots": 1.5}, "whole number of slots"),
        ({"chain_slots": True}, "whole number of slots"),
        ({"mix_blend": "no"}, "True or False"),
    ]:
        with pytest.raises(ValueError, match=message):
            PolicyParams(**fields, version=0, **(params.mixing | changes))
    blend = parse("augmix-w2-d1").sample(3, np.random.default_rng(3))
    with pytest.raises(ValueError, match="blend factor be at most 1"):
        PolicyParams(**blend.arrays(), **(blend.mixing | {"mix": blend.mix * [[3, 1, 1]]}))


def test_the_loader_refuses_augmix_it_cannot_batch_or_hold():
    pytest.importorskip("nvidia.dali")
    from fastpolicy.loader import PolicyDALILoader
    from fastpolicy.timm_strings import parse

    loader = PolicyDALILoader.from_arrays(np.zeros((8, 4, 4), np.uint8), np.zeros(8, np.int64), batch_size=2, M=2)
    for policies in (
        [AugMix(mixture_width=2, chain_depth=2), AugMix(mixture_width=3, chain_depth=2)],
        [AugMix(chain_depth=1), AugMix(chain_depth=2)],
        [AugMix(chain_depth=2), parse("augmix-d2")],
    ):
        with pytest.raises(ValueError, match="must share their chains, slots per chain and mix"):
            loader.set_policies(policies)
    state = loader.state_dict()  # a saved state meets the same checks
    state["policies"] = [AugMix(chain_depth=5).to_dict()] * 2
    with pytest.raises(ValueError, match="chains of up to 5 ops"):
        loader.load_state_dict(state)
