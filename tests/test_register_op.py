"""Your own ops: ``fastpolicy.register_op`` end to end — every stage, the transform, the loader,
a search — and the refusals (stages without an implementation, bad declarations)."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import photo_batch, photos
from torchvision import tv_tensors

import fastpolicy
from fastpolicy import OP_NAMES, OPS, Policy, reference
from fastpolicy.backends.protocol import OutputSpec
from fastpolicy.backends.stage import make_stage, stage_backend
from fastpolicy.registry import BUILTIN_OPS, unregister_op
from fastpolicy.sampling import complete
from fastpolicy.spaces import get_space
from fastpolicy.transforms import PolicyAugment

pytest.importorskip("nvidia.dali")
from fastpolicy.loader import Augment, Pipeline, PolicyDALILoader

HEIGHT, WIDTH, BATCH = 30, 37, 24


def zoom(value: float, height: int, width: int):
    """Scale by ``value`` about the centre (PIL's output → input matrix)."""
    cx, cy = width / 2, height / 2
    return (1 / value, 0.0, cx - cx / value, 0.0, 1 / value, cy - cy / value)


def gamma(value: float) -> np.ndarray:
    return np.round(255 * (np.arange(256) / 255) ** value)


def mirror(image: np.ndarray, value: float) -> np.ndarray:
    return image[:, ::-1].copy()


def shift(value: float, height: int, width: int):
    """A diagonal shear and a shift: PIL's fixed-point engine, which DALI's warp reproduces."""
    return (1.0, value, 2.5, value / 2, 1.0, -1.5)


@pytest.fixture(scope="module")
def registered():
    """Four ops, each form (a scale and a shear), in the adversarial space (Zoom in AWS's too);
    removed after."""
    specs = [
        fastpolicy.register_op("Zoom", matrix=zoom, magnitude=(1.0, 1.6), spaces=("adversarial", "aws"), identity=1.0),
        fastpolicy.register_op("Gamma", lut=gamma, magnitude=(0.4, 1.6), identity=1.0),
        fastpolicy.register_op("Mirror", reference=mirror),
        fastpolicy.register_op("Shift", matrix=shift, magnitude=(0.0, 0.3), signed=True),
    ]
    yield [spec.name for spec in specs]
    for spec in reversed(specs):
        unregister_op(spec.name)
    assert tuple(OP_NAMES) == BUILTIN_OPS


IMPLEMENTED = {  # stage → the registered ops it runs; the others it refuses by name
    "numpy": {"Zoom", "Gamma", "Mirror", "Shift"},
    "pil": {"Zoom", "Gamma", "Mirror", "Shift"},
    "native": {"Zoom", "Gamma", "Shift"},
    "emulated": {"Zoom", "Gamma", "Shift"},
    "dali": {"Shift"},
}
SCALES = {"Zoom"}
"""Registered geometric ops whose matrix scales (PIL's float64 scale engine): DALI refuses them."""


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("backend", list(IMPLEMENTED))
def test_registered_ops_run_on_every_stage_that_has_them(registered, backend, grey):
    """Each registered op alone at every bin (both signs) and all three in sequence: the
    stage's pixels are the reference's; a stage without the op's form refuses it by name."""
    entry = stage_backend(backend)
    if not entry.available():
        pytest.skip(f"backend {backend!r} is not available here: it needs {entry.needs}")
    stage = make_stage(backend, "cpu", max_batch=BATCH, height=HEIGHT, width=WIDTH, channels=1 if grey else 3, slots=3)
    images = photo_batch(BATCH, HEIGHT, WIDTH, grey)
    space = get_space("adversarial")
    rng = np.random.default_rng(3)
    bins = np.tile(np.arange(space.n_bins), BATCH)[:BATCH, None]
    cases = [(name, np.full((BATCH, 1), OPS[name].id), bins) for name in registered]
    ids = np.array([OPS[name].id for name in IMPLEMENTED[backend]])
    cases.append(("all", np.tile(ids, (BATCH, 1)), rng.integers(0, space.n_bins, (BATCH, len(ids)))))
    for name, op, b in cases:
        params = complete(op, b, space, rng)
        uint8 = OutputSpec("uint8", "channels_last")
        if name != "all" and name not in IMPLEMENTED[backend]:
            with pytest.raises(ValueError, match=f"op '{name}' (has no|at value .* scales the image)"):
                stage.apply(torch.from_numpy(images), params, uint8)
            continue
        got = stage.apply(torch.from_numpy(images), params, uint8).permute(0, 2, 3, 1).numpy()
        np.testing.assert_array_equal(got, reference.apply_batch(images, params), err_msg=f"{name} on {backend}")
        assert not np.array_equal(got, images), name  # the op did something


def test_registered_ops_join_their_spaces_and_policies(registered, tmp_path):
    adversarial, aws = get_space("adversarial"), get_space("aws")
    assert adversarial.ops[-4:] == ("Zoom", "Gamma", "Mirror", "Shift") and "Zoom" in aws.ops and "Gamma" not in aws.ops
    assert [e.name for e in aws.elements[-3:]] == ["Zoom@3", "Zoom@6", "Zoom@9"]
    assert adversarial.value("Zoom", 9) == pytest.approx(1.6) and adversarial.value("Mirror", 4) == 0.0
    policy = Policy([[("Zoom", 9), ("Gamma", 2)], [("Mirror", 0)]])
    policy.save(tmp_path / "policy.json")
    assert fastpolicy.policies.resolve(str(tmp_path / "policy.json")) == policy
    assert "Zoom" in (tmp_path / "policy.json").read_text()


def test_the_transform_runs_registered_ops_and_boxes_follow_them(registered):
    policy = Policy([[("Zoom", 9), ("Gamma", 0)], [("Mirror", 0), ("Zoom", 5)]])
    image = np.ascontiguousarray(photos()["chelsea"][:HEIGHT, :WIDTH])
    for seed in range(6):
        ops = PolicyAugment(policy, generator=torch.Generator().manual_seed(seed)).draw(1)[0]
        expected = image
        for op in ops:
            expected = reference.apply_value(OP_NAMES[op.op], expected, op.value, fill=128)
        transform = PolicyAugment(policy, generator=torch.Generator().manual_seed(seed))
        pil = transform(PIL.Image.fromarray(image))
        np.testing.assert_array_equal(np.asarray(pil), expected)
        transform = PolicyAugment(policy, generator=torch.Generator().manual_seed(seed))
        boxes = tv_tensors.BoundingBoxes([[10, 8, 20, 18]], format="XYXY", canvas_size=(HEIGHT, WIDTH))
        tensor, moved = transform(tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)), boxes)
        np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), expected)
        zoomed = [op.value for op in ops if OP_NAMES[op.op] == "Zoom"]
        if zoomed == [1.6]:  # Zoom alone moves the box: about the centre, by 1.6
            cx, cy = WIDTH / 2, HEIGHT / 2
            want = [cx + (10 - cx) * 1.6, cy + (8 - cy) * 1.6, cx + (20 - cx) * 1.6, cy + (18 - cy) * 1.6]
            torch.testing.assert_close(moved[0].float(), torch.tensor(want).clamp(0).round(), atol=1, rtol=0)


def test_the_loader_runs_registered_ops(registered, photo_tree):
    """The default CPU stage (native where a compiler is) gives the reference's pixels; the
    DALI stage refuses the table op by name."""
    policies = [Policy([[("Zoom", 7), ("Gamma", 1)], [("Gamma", 8)]]), Policy([[("Zoom", 2)]])]
    loaders = [
        PolicyDALILoader(
            photo_tree,
            batch_size=4,
            M=2,
            image_size=32,
            policies=policies,
            output="uint8",
            augment=Augment(backend=backend),
            pipeline=Pipeline(seed=3),
        )
        for backend in ("native", "numpy")
    ]
    for batch, expected in zip(*loaders):
        assert np.isin(batch.params.op, [OPS["Zoom"].id, OPS["Gamma"].id, -1]).all()
        assert torch.equal(batch.images, expected.images)
    dali = PolicyDALILoader(
        photo_tree, batch_size=4, M=2, image_size=32, policies=policies, augment=Augment(backend="dali")
    )
    with pytest.raises(ValueError, match="op 'Gamma' has no DALI implementation"):
        next(iter(dali))


def test_a_search_samples_registered_ops(registered, tmp_path):
    """One epoch of Adversarial AutoAugment on Fashion-MNIST: the controller chooses among the
    20 ops and its schedule names registered ones."""
    from fastpolicy.train.adversarial import AdversarialConfig, AdversarialSearch

    config = AdversarialConfig(
        out=str(tmp_path), epochs=1, train_subset=96, val_subset=48, batch=32, M=4, progress=False, controller_window=0
    )
    AdversarialSearch(config).run()
    schedule = json.loads((tmp_path / "schedule.json").read_text())
    policies = [policy for epoch in schedule["epochs"] for policy in epoch["policies"]]
    names = {choice["op"] for policy in policies for sub in policy["sub_policies"] for choice in sub}
    assert names & set(registered), names


def test_a_transform_follows_the_registry_after_it_changes(registered):
    """Ops registered after a transform drew (its draws are kept per thread) reach its next
    draws: an op removed and registered again with another range gives the new values."""
    fastpolicy.register_op("Lift", lut=lambda v: np.clip(np.arange(256) + round(v), 0, 255), magnitude=(0.0, 50.0))
    transform = PolicyAugment(Policy([[("Lift", 9)]]), generator=torch.Generator().manual_seed(0))
    assert transform.draw(1)[0][0].value == 50.0
    unregister_op("Lift")
    fastpolicy.register_op("Lift", lut=lambda v: np.clip(np.arange(256) + round(v), 0, 255), magnitude=(0.0, 10.0))
    try:
        assert transform.draw(1)[0][0].value == 10.0
    finally:
        unregister_op("Lift")


def test_masks_land_on_a_registered_zooms_pixels(registered):
    """A scaling matrix is not a shift: masks take the image's own warp, not a rounded one."""
    image = torch.from_numpy(photo_batch(1, HEIGHT, WIDTH, grey=True)[0, ..., 0])
    transform = PolicyAugment(Policy([[("Zoom", 6)]]), fill=0, generator=torch.Generator().manual_seed(1))
    out, mask = transform(tv_tensors.Image(image[None]), tv_tensors.Mask(image.clone()))
    assert torch.equal(mask.as_subclass(torch.Tensor), out[0].as_subclass(torch.Tensor))


def test_bad_declarations_are_refused_and_register_nothing(registered):
    before = tuple(OP_NAMES)
    with pytest.raises(ValueError, match="already registered"):
        fastpolicy.register_op("Rotate", matrix=zoom, magnitude=(1, 2))
    with pytest.raises(ValueError, match="exactly one of matrix=, lut= or reference="):
        fastpolicy.register_op("Both", matrix=zoom, lut=gamma)
    with pytest.raises(ValueError, match="letters, digits"):
        fastpolicy.register_op("my op", lut=gamma)
    with pytest.raises(ValueError, match=r"register_op\('Short'\): at value .*256 whole levels"):
        fastpolicy.register_op("Short", lut=lambda v: np.arange(255), magnitude=(0, 1))
    with pytest.raises(ValueError, match=r"register_op\('Cropper'\): at value 0, .*uint8 image of the input's shape"):
        fastpolicy.register_op("Cropper", reference=lambda image, v: image[1:])
    with pytest.raises(ValueError, match=r"at value 0: .*32768"):  # a matrix PIL's fixed point cannot hold
        fastpolicy.register_op(
            "Huge", matrix=lambda v, h, w: (1, 0.1, 1e6, 0, 1, 0.5), magnitude=(0, 1), spaces=("aws",)
        )
    with pytest.raises(ValueError, match="spaces must name some of"):
        fastpolicy.register_op("Nowhere", lut=gamma, magnitude=(1, 2), spaces=("imagenet",))
    with pytest.raises(ValueError, match="built in"):
        unregister_op("Rotate")
    with pytest.raises(ValueError, match="not the last one registered"):
        unregister_op("Zoom")
    assert tuple(OP_NAMES) == before
