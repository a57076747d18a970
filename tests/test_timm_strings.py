"""timm's policy strings against timm itself (a test dependency): laws, pixels, distributions.

* every timm op's level → argument law equals timm's ``LEVEL_TO_ARG`` (whole, fractional and
  over-10 levels, both signs);
* every timm op at several levels gives timm's pixels through the reference (timm with its
  ``interpolation`` set to NEAREST and fill 128, the deviations ``docs/policies.md`` states);
* each string's distribution — ops per image, op frequencies, value means — matches timm's own
  transform, drawn with both seeded (tolerances: 5 standard errors, stated per check);
* the strings run through PolicyAugment, the loader and policy files; bad strings name the part.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import crop, photos
from PIL import Image

from fastpolicy.policies import load_policy_file, resolve
from fastpolicy.reference import apply_value
from fastpolicy.registry import OP_NAMES
from fastpolicy.timm_strings import AA_TABLES, GRAMMAR, LAWS, TimmPolicy, parse

timm_aa = pytest.importorskip("timm.data.auto_augment")

STRINGS = [
    "rand-m9-mstd0.5-inc1",
    "rand-m9-mstd0.5",
    "rand-m7-n3-p0.8-mmax15-mstd1",
    "rand-m10-mstd101-inc1",
    "rand-m9-n3-tweights",
    "original",
    "originalr-mstd0.5",
    "v0",
    "v0r",
    "3a",
    "3a-mstd0.5",
    "rand-t3a",
    "rand-m7-n3-t3aw",
]
"""Strings from timm's docs and recipes, and every part of the grammar."""

AUGMIX_STRINGS = ["augmix-m5-w4-d2", "augmix-m3-w2-mstd0.5-a0.5"]
"""timm's AugMix: its docs' example and the other parts (drawn depths, level noise, alpha)."""

DRAWS = 6000
"""Images drawn per string, on each side."""


OP_ARGUMENT = {
    "Desaturate": lambda arg: min(1.0, max(0.0, 1.0 - arg)),  # timm's desaturate(): Color's factor
    "GaussianBlurRand": lambda factor: random.uniform(0.1, 2.0 * factor),  # gaussian_blur_rand()'s radius
}
"""timm ops whose function turns ``LEVEL_TO_ARG``'s argument into the op's parameter itself: that
step, as timm's op function takes it (drawing from Python's ``random`` where it does)."""


def _hparams(size: int, channels: int = 3) -> dict:
    fill = (128,) * channels if channels > 1 else 128
    return {"img_mean": fill, "interpolation": Image.NEAREST, "translate_const": 0.45 * size}


@pytest.mark.parametrize("name", sorted(LAWS))
def test_every_law_is_timms(name):
    target, law = LAWS[name]
    timm_law = timm_aa.LEVEL_TO_ARG[name]
    if law is None:
        assert timm_law is None
        return
    levels = np.array([0, 0.5, 1, 2.5, 3, 4.99, 5, 7.3, 9, 10, 12.6, 15])
    for seed in range(4):
        random.seed(seed)  # timm's _randomly_negate: random.random() > 0.5
        argument = OP_ARGUMENT.get(name, lambda arg: arg)
        want = np.array([argument(timm_law(float(level), _hparams(100))[0]) for level in levels])
        if name in ("TranslateX", "TranslateY"):
            want = want / 100  # pixels of a 100-pixel side as a fraction of it
        random.seed(seed)
        ours_rng = _PythonRandomAsNumpy()
        got, sign = law(levels, ours_rng)
        clipped = np.clip(want, 0, 8) if target == "Posterize" else want  # outside [0, 8]: same pixels
        np.testing.assert_allclose(got, clipped, rtol=0, atol=1e-12, err_msg=name)
        assert set(np.unique(sign)) <= {-1, 1}


class _PythonRandomAsNumpy:
    """``rng.random(shape)`` from Python's ``random`` in timm's order, so signs match timm's."""

    def random(self, shape):
        return np.array([random.random() for _ in range(int(np.prod(shape)))]).reshape(shape)


@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("photo", ["astronaut", "camera_grey"])
def test_every_timm_op_gives_timms_pixels(name, photo):
    image = crop(photos()[photo], 61, 80)
    pil = Image.fromarray(image)
    target, law = LAWS[name]
    for level in (0, 3, 7.5, 10):
        random.seed(level)
        op = timm_aa.AugmentOp(name, prob=1.0, magnitude=level, hparams=_hparams(80, 1 if image.ndim == 2 else 3))
        if law is None:
            value = 0.0
        else:
            random.seed(level)
            value = float(law(np.array([float(level)]), _PythonRandomAsNumpy())[0][0])
        if target == "Posterize" and value == 0:
            # Pillow 13 refuses 0 bits, which timm asks for below level 2.5; fastpolicy clears
            # every bit (black), as Pillow did before
            with pytest.raises(ValueError, match="bits"):
                op(pil)
            assert not apply_value(target, image[..., None] if image.ndim == 2 else image, value).any()
            continue
        random.seed(level)
        want = np.asarray(op(pil))
        if name == "TranslateY":  # timm's absolute pixels: translate_const of the width, also on the height
            continue
        got = apply_value(target, image if image.ndim == 3 else image[..., None], value)
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=f"{name} level {level}")


def _timm_draws(string: str, n: int, seed: int) -> list[list[tuple[str, float]]]:
    """The ops (registry name, value) timm's own transform applies to ``n`` images: each op's
    function is replaced by a recorder that keeps the image."""
    random.seed(seed)
    np.random.seed(seed)
    if string.startswith("rand"):
        transform = timm_aa.rand_augment_transform(string, hparams=_hparams(100))
        ops = transform.ops
    elif string.startswith("augmix"):  # create_transform runs timm's AugMix with translate_pct 0.3
        transform = timm_aa.augment_and_mix_transform(string, hparams=_hparams(100) | {"translate_pct": 0.3})
        ops = transform.ops
    else:
        transform = timm_aa.auto_augment_transform(string, hparams=_hparams(100))
        ops = [op for sub in transform.policy for op in sub]
    record: list = []
    for op in ops:

        def fn(img, *args, _name=op.name, **_):
            value = float(OP_ARGUMENT.get(_name, lambda arg: arg)(args[0])) if args else 0.0
            if _name in ("TranslateX", "TranslateY"):
                value /= 100
            if LAWS[_name][0] == "Posterize":
                value = float(np.clip(value, 0, 8))
            record[-1].append((LAWS[_name][0], value))
            return img

        op.aug_fn = fn
    img = Image.new("RGB", (4, 4))
    for _ in range(n):
        record.append([])
        transform(img)
    return record


def _our_draws(string: str, n: int, seed: int) -> list[list[tuple[str, float]]]:
    params = parse(string).sample(n, np.random.default_rng(seed))
    return [[(OP_NAMES[o], float(v)) for o, v in zip(params.op[i], params.value[i]) if o >= 0] for i in range(params.n)]


@pytest.mark.parametrize("string", STRINGS + AUGMIX_STRINGS)
def test_each_string_draws_timms_distribution(string):
    """Ops per image, each op's share of applications (both within 5 standard errors of a
    binomial proportion) and each op's mean value (within 5 standard errors of the mean,
    pooled) — ours against timm's own transform, DRAWS images each."""
    theirs, ours = _timm_draws(string, DRAWS, 0), _our_draws(string, DRAWS, 1)
    for name, (a, b) in {"ops per image": (Counter(map(len, theirs)), Counter(map(len, ours)))}.items():
        for count in set(a) | set(b):
            p = (a[count] + b[count]) / (2 * DRAWS)
            se = np.sqrt(2 * p * (1 - p) / DRAWS) + 1e-9
            assert abs(a[count] - b[count]) / DRAWS <= 5 * se + 1 / DRAWS, f"{string}: {name} = {count}"
    flat_t = [x for row in theirs for x in row]
    flat_o = [x for row in ours for x in row]
    for op in {name for name, _ in flat_t} | {name for name, _ in flat_o}:
        vt = np.array([v for name, v in flat_t if name == op])
        vo = np.array([v for name, v in flat_o if name == op])
        p = (len(vt) + len(vo)) / (len(flat_t) + len(flat_o))
        share_se = np.sqrt(2 * p * (1 - p) / max(len(flat_t), 1))
        assert abs(len(vt) / len(flat_t) - len(vo) / len(flat_o)) <= 5 * share_se + 1e-3, f"{string}: {op} share"
        if len(vt) > 30 and len(vo) > 30:
            for what, a, b in (("value", vt, vo), ("|value|", np.abs(vt), np.abs(vo))):  # signs hide a scale
                se = np.sqrt(a.var() / len(a) + b.var() / len(b)) + 1e-12
                assert abs(a.mean() - b.mean()) <= 5 * se, f"{string}: {op} mean {what} {a.mean()} vs {b.mean()}"
            assert vt.min() >= vo.min() - 1e-9 or vo.min() >= vt.min() - 1e-9  # same support, loosely


@pytest.mark.parametrize("string", AUGMIX_STRINGS)
def test_timms_augmix_weights_follow_its_law(string):
    """The mix's weights: each chain's Dirichlet share and the Beta blend factor, mean and spread
    within 5 standard errors of timm's own draws (numpy's Dirichlet and Beta, as timm calls them)."""
    policy = parse(string)
    ours = policy.sample(DRAWS, np.random.default_rng(2)).mix
    np.random.seed(3)
    alpha, width = policy.augmix["alpha"], policy.augmix["width"]
    theirs = []
    for _ in range(DRAWS):
        weights = np.float32(np.random.dirichlet([alpha] * width))
        theirs.append([np.float32(np.random.beta(alpha, alpha)), *weights])
    theirs = np.array(theirs)
    se = np.sqrt(ours.var(axis=0) / DRAWS + theirs.var(axis=0) / DRAWS)
    assert np.all(np.abs(ours.mean(axis=0) - theirs.mean(axis=0)) <= 5 * se)
    assert np.all(np.abs(ours.std(axis=0) - theirs.std(axis=0)) <= 0.02)
    np.testing.assert_allclose(ours[:, 1:].sum(axis=1), 1, atol=1e-5)


def test_timms_augmix_mix_is_timms_own_code(monkeypatch):
    """timm's AugMixAugment, handed our chains' images (the reference's) and our weights, gives
    the pixels PolicyAugment gives: its float32 sum, clip, truncation and PIL blend."""
    from fastpolicy.transforms import PolicyAugment

    image = Image.fromarray(np.ascontiguousarray(photos()["astronaut"][:36, :45]))
    transform = PolicyAugment("augmix-m8-w3-d2", generator=torch.Generator().manual_seed(4))
    for _ in range(6):
        params = transform.make_params([image])
        ours = transform.transform(image, params)
        outputs = []
        for chain in params["chains"]:
            out = np.asarray(image)
            for op in chain[0]:
                out = apply_value(OP_NAMES[op.op], out, op.value, fill=transform.default_fill)
            outputs.append(Image.fromarray(out))
        chains = iter(outputs)

        class Chain:  # timm's op protocol: img -> img; depth 1, so one call per chain
            def __call__(self, img, chains=chains):
                return next(chains)

        weights = params["mix"][0]
        monkeypatch.setattr(np.random, "dirichlet", lambda alpha, w=weights: w[1:].astype(np.float64))
        monkeypatch.setattr(np.random, "beta", lambda a, b, w=weights: float(w[0]))
        theirs = timm_aa.AugMixAugment([Chain()], alpha=1.0, width=3, depth=1)(image)
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_timms_augmix_through_the_transform_is_the_reference():
    from fastpolicy import reference
    from fastpolicy.transforms import PolicyAugment

    images = np.stack([np.ascontiguousarray(photos()[name][:36, :45]) for name in ("astronaut", "coffee", "chelsea")])
    for seed in range(4):
        transform = PolicyAugment("augmix-m9-w2", generator=torch.Generator().manual_seed(seed))
        drawn = PolicyAugment("augmix-m9-w2", generator=torch.Generator().manual_seed(seed))
        params = drawn.sample(len(images), drawn._rng())
        out = transform(torch.from_numpy(images).permute(0, 3, 1, 2))
        expected = reference.apply_batch(images, params, fill=transform.default_fill)
        np.testing.assert_array_equal(out.permute(0, 2, 3, 1).numpy(), expected)


@pytest.mark.parametrize("string", ["3a", "rand-m9-t3a", "rand-n3-t3aw"])
def test_3augment_through_the_transform_and_the_loader_is_the_reference(string, tmp_path):
    """DeiT III's 3-Augment strings (GaussianBlur and Desaturate among their ops): a tensor batch
    and PIL images through PolicyAugment, and the loader's stage, equal the reference for the
    draws each reports; ``--policy`` takes the string."""
    from PIL import Image as PILImage

    from fastpolicy import reference
    from fastpolicy.loader import PolicyDALILoader
    from fastpolicy.transforms import PolicyAugment

    images = np.stack([np.ascontiguousarray(photos()[name][:36, :45]) for name in ("astronaut", "coffee", "chelsea")])
    blurred = 0
    for seed in range(6):
        transform = PolicyAugment(string, generator=torch.Generator().manual_seed(seed))
        drawn = PolicyAugment(string, generator=torch.Generator().manual_seed(seed))
        params = drawn.sample(len(images), drawn._rng())
        blurred += int(np.sum(params.op == OP_NAMES.index("GaussianBlur")))
        out = transform(torch.from_numpy(images).permute(0, 3, 1, 2))
        expected = reference.apply_batch(images, params, fill=transform.default_fill)
        np.testing.assert_array_equal(out.permute(0, 2, 3, 1).numpy(), expected)
        one = PolicyAugment(string, generator=torch.Generator().manual_seed(seed))
        ops = PolicyAugment(string, generator=torch.Generator().manual_seed(seed)).draw(1)[0]
        pil_out = np.asarray(one(PILImage.fromarray(images[0])))
        want = images[0]
        for op in ops:
            want = reference.apply_value(OP_NAMES[op.op], want, op.value, fill=one.default_fill)
        np.testing.assert_array_equal(pil_out, want)
    assert blurred > 0  # the blur was drawn and checked
    from fastpolicy.backends.protocol import finish
    from fastpolicy.loader import Augment, Pipeline

    pool = np.stack([crop(photos()[name], 32, 32) for name in ("chelsea", "coffee", "astronaut", "china")])
    pool = np.concatenate([pool] * 2)
    for backend, output in (("native", "uint8"), ("native", "float"), ("dali", "uint8")):
        loader = PolicyDALILoader.from_arrays(
            pool,
            np.zeros(len(pool), np.int64),
            batch_size=4,
            M=2,
            output=output,
            policies=string,
            augment=Augment(baseline="none", backend=backend, slots=max(2, parse(string).n_ops)),
            pipeline=Pipeline(shuffle=False),
        )
        for batch in loader:
            expected = reference.apply_batch(np.concatenate([pool[batch.indices]] * 2), batch.params)
            want = finish(torch.from_numpy(expected), loader.output_spec)
            assert batch.images.dtype == want.dtype and torch.equal(batch.images, want), (backend, output)


def test_tables_are_timms():
    for name, table in AA_TABLES.items():
        theirs = getattr(timm_aa, f"auto_augment_policy_{name}")(None)
        assert [[(op.name, op.prob, op.magnitude) for op in sub] for sub in theirs] == [list(sub) for sub in table]
    assert tuple(timm_aa._RAND_TRANSFORMS) == parse("rand").ops
    assert tuple(timm_aa._RAND_INCREASING_TRANSFORMS) == parse("rand-inc1").ops
    assert dict(timm_aa._RAND_WEIGHTED_0) == dict(
        zip(parse("rand-tweights").ops, [3, 2, 2, 1, 1, 0.25, 0.25, 0.25] + [0.05] * 7)
    )
    assert tuple(timm_aa._RAND_3A) == parse("rand-t3a").ops
    weighted = parse("rand-t3aw")
    assert weighted.ops == tuple(timm_aa._RAND_WEIGHTED_3A)
    theirs = np.array(list(timm_aa._RAND_WEIGHTED_3A.values()), dtype=np.float64)
    np.testing.assert_allclose(weighted.weights, theirs / theirs.sum(), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("string", "message"),
    [
        ("rand-q3", "unknown part 'q3'"),
        ("rand-m", "unknown part 'm'"),
        ("rand-mx", "unknown part 'mx'"),
        ("rand-p1.5", "'p1.5' must be in \\[0, 1\\]"),
        ("rand-n-2", "unknown part 'n'"),
        ("original-m3", "unknown part 'm3'"),
        ("augmix-m5-b1", "'b1' is timm's blended AugMix"),
        ("augmix-m5-q2", "unknown part 'q2'"),
        ("3a-m5", "unknown part 'm5'"),
        ("rand-t3a-t3aw", "op sets 't3a' and 't3aw' both given"),
        ("rand-tweights-t3a", "op sets 'tweights' and 't3a' both given"),
        ("rand-n15-t3aw", "n15 layers without replacement from 14 weighted ops"),
        ("rand-tfoo", "unknown op set 'tfoo'"),
        ("rand-mstd0.5-mstd1", "part 'mstd' given twice"),
        ("rand-m9-m7", "part 'm' given twice"),
        ("rand-best.json", "rand-best.json: no such file"),
    ],
)
def test_bad_strings_name_the_part(string, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        resolve(string)
    if "unknown part" in message:
        assert GRAMMAR in str(info.value)


def test_strings_run_through_policy_augment_the_loader_and_files(tmp_path):
    import torch

    from fastpolicy.loader import PolicyDALILoader
    from fastpolicy.transforms import PolicyAugment

    augment = PolicyAugment("rand-m9-mstd0.5-inc1")
    image = torch.from_numpy(crop(photos()["astronaut"], 64, 64)).permute(2, 0, 1).contiguous()
    torch.manual_seed(0)
    outs = [augment(image) for _ in range(20)]
    assert any(not torch.equal(out, image) for out in outs) and all(out.shape == image.shape for out in outs)
    assert augment.default_fill == 128
    images = np.stack([crop(photos()["chelsea"], 32, 32)] * 16)
    loader = PolicyDALILoader.from_arrays(images, np.zeros(16, np.int64), batch_size=8, M=2, policies="v0r-mstd0.5")
    batch = next(iter(loader))
    assert batch.params.n == 16 and loader.policies == [TimmPolicy("v0r-mstd0.5")] * 2
    assert set(batch.params.op[batch.params.op >= 0]) <= {OP_NAMES.index(LAWS[n][0]) for n in LAWS}
    mixed = PolicyDALILoader.from_arrays(images, np.zeros(16, np.int64), batch_size=8, M=2, policies="augmix-m5-w4-d2")
    batch = next(iter(mixed))  # timm's AugMix: its chains and mix through the loader's stage
    assert batch.params.mix_blend and batch.params.mix.shape == (16, 5) and batch.images.shape[0] == 16
    path = tmp_path / "timm.json"
    parse("rand-m9-n3").save(path)
    assert load_policy_file(str(path)) == parse("rand-m9-n3")
    named_like_timm = tmp_path / "rand-best.json"  # an existing file is read, whatever its name
    parse("v0").save(named_like_timm)
    assert resolve(str(named_like_timm)) == parse("v0")


def test_a_string_in_a_config_file_and_on_the_command_line_trains(tmp_path):
    from fastpolicy.cli import main

    config = tmp_path / "run.yaml"
    config.write_text("policy: v0r-mstd0.5\nepochs: 1\ntrain-subset: 64\nval-subset: 32\nbatch: 32\nM: 2\n")
    out = tmp_path / "run"
    assert main(["-q", "train", "--config", str(config), "--device", "cpu", "--out", str(out)]) == 0
    assert "policy: v0r-mstd0.5" in (out / "config.yaml").read_text()
    blur = tmp_path / "blur"  # DeiT III's 3-Augment (GaussianBlur, Desaturate) on the command line
    assert main(["-q", "train", "--config", str(config), "--policy", "3a", "--device", "cpu", "--out", str(blur)]) == 0
    assert "policy: 3a" in (blur / "config.yaml").read_text()
    assert main(["-q", "train", "--policy", "rand-m9-q1", "--device", "cpu", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
