"""The one stage protocol: every registered backend, op, bin, dtype and layout against the
reference; the registration and the factory; the one packer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import photo_batch

from fastpolicy import OPS, Policy, spaces
from fastpolicy.backends import registration
from fastpolicy.backends.dali_stage import DALI_SLOTS
from fastpolicy.backends.kernel_pack import KERNEL_SLOTS
from fastpolicy.backends.pack import pack
from fastpolicy.backends.stage import (
    DTYPES,
    OutputSpec,
    default_stage,
    make_stage,
    resolve_backend,
    stage_backend,
)
from fastpolicy.params import NO_OP
from fastpolicy.policies import autoaugment, randaugment, trivialaugment_wide
from fastpolicy.reference import apply_batch
from fastpolicy.sampling import complete, sample_policies

N, HEIGHT, WIDTH = 16, 20, 24
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CPU_BACKENDS = ["numpy", "pil", "native", "emulated", "dali"]
ALL_BACKENDS = [*CPU_BACKENDS, pytest.param("cupy", marks=pytest.mark.gpu)]


def _params(seed: int = 0, n: int = N):
    rng = np.random.default_rng(seed)
    return sample_policies([Policy.random(rng) for _ in range(4)], n // 4, rng)


def _spec(dtype: str, layout: str, channels: int = 3) -> OutputSpec:
    if dtype == "uint8":
        return OutputSpec(dtype, layout)
    return OutputSpec(
        dtype, layout, MEAN[:channels] if channels == 3 else (0.5,), STD[:channels] if channels == 3 else (0.25,)
    )


def _expected(pixels: np.ndarray, spec: OutputSpec) -> torch.Tensor:
    """uint8 NHWC ``pixels`` as ``spec`` asks, computed apart from :func:`finish`: NumPy float32
    ``(v - 255·mean) · (1 / (255·std))`` (round to nearest even into the float type), NCHW."""
    if spec.normalized:
        mean = np.float32(255) * np.asarray(spec.mean, np.float32)
        inv_std = np.float32(1) / (np.float32(255) * np.asarray(spec.std, np.float32))
        values = torch.from_numpy((pixels.astype(np.float32) - mean) * inv_std).to(DTYPES[spec.dtype])
    else:
        values = torch.from_numpy(pixels.copy())
    return values.permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def stages():
    pytest.importorskip("nvidia.dali")
    made = {}

    def get(backend: str, channels: int = 3):
        if (backend, channels) not in made:
            made[backend, channels] = make_stage(
                backend, "cpu", max_batch=N, height=HEIGHT, width=WIDTH, channels=channels, slots=2
            )
        return made[backend, channels]

    return get


OP_HEIGHT, OP_WIDTH, OP_BATCH = 30, 37, 30
OPS_BY_SPACE = [(name, space) for space in ("adversarial", "aws", "timm") for name in spaces.get_space(space).ops] + [
    (name, "dali") for name in spaces.get_space("dali").ops if spaces.get_space("dali").magnitude(name) is not None
]  # DALI's ranges reach new values: translations of a whole side, Posterize to 1 bit, Solarize from 0


@pytest.fixture(scope="module")
def op_stages():
    """Stages for the every-op test, one per (backend, channels), built for 30×37 batches."""
    made = {}

    def get(backend: str, channels: int):
        entry = stage_backend(backend)
        if not entry.available():
            pytest.skip(f"backend {backend!r} is not available here: it needs {entry.needs}")
        device = "gpu" if "cpu" not in entry.devices else "cpu"
        if (backend, channels) not in made:
            made[backend, channels] = make_stage(
                backend, device, max_batch=OP_BATCH, height=OP_HEIGHT, width=OP_WIDTH, channels=channels, slots=1
            )
        return made[backend, channels], device

    return get


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize(("name", "space"), OPS_BY_SPACE, ids=[f"{name}-{space}" for name, space in OPS_BY_SPACE])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_every_op_every_bin_on_every_backend_equals_the_reference(op_stages, backend, name, space, grey):
    """Each registered op alone, every bin of its search space and both signs spread over
    the batch, through each available backend's stage: pixel for pixel the reference."""
    search_space = spaces.get_space(space)
    stage, device = op_stages(backend, 1 if grey else 3)
    images = photo_batch(OP_BATCH, OP_HEIGHT, OP_WIDTH, grey)
    bins = np.tile(np.arange(search_space.n_bins), OP_BATCH)[:OP_BATCH, None]
    params = complete(np.full((OP_BATCH, 1), OPS[name].id), bins, search_space, np.random.default_rng(OPS[name].id))
    assert set(bins.ravel()) == set(range(search_space.n_bins))
    target = torch.device("cuda" if device == "gpu" else "cpu")
    got = stage.apply(torch.from_numpy(images).to(target), params, OutputSpec("uint8", "channels_last"))
    np.testing.assert_array_equal(
        got.permute(0, 2, 3, 1).cpu().numpy(),
        apply_batch(images, params),
        err_msg=f"{name} ({space}) on {backend!r} differs from the reference",
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_every_backend_through_the_protocol_equals_the_reference(stages, backend, dtype, layout):
    images = photo_batch(N, HEIGHT, WIDTH)
    params = _params(1)
    spec = _spec(dtype, layout)
    expected = _expected(apply_batch(images, params), spec)
    got = stages(backend).apply(torch.from_numpy(images), params, spec)
    assert got.shape == (N, 3, HEIGHT, WIDTH) and got.dtype == DTYPES[dtype]
    assert got.is_contiguous(memory_format=spec.memory_format)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_channels_last_equals_nchw_value_for_value(stages, backend):
    images = torch.from_numpy(photo_batch(N, HEIGHT, WIDTH, grey=True))
    params = _params(2)
    for dtype in DTYPES:
        nchw = stages(backend, 1).apply(images, params, _spec(dtype, "nchw", 1))
        last = stages(backend, 1).apply(images, params, _spec(dtype, "channels_last", 1))
        assert nchw.is_contiguous() and last.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(nchw, last)


@pytest.mark.parametrize("policy", [autoaugment, randaugment, trivialaugment_wide])
def test_standard_policies_through_the_native_stage_equal_the_reference(stages, policy):
    images = photo_batch(N, HEIGHT, WIDTH)
    params = sample_policies([policy()] * 2, N // 2, np.random.default_rng(3))
    spec = _spec("uint8", "nchw")
    assert torch.equal(
        stages("native").apply(torch.from_numpy(images), params, spec), _expected(apply_batch(images, params), spec)
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_no_policy_only_converts(stages, backend):
    images = photo_batch(N, HEIGHT, WIDTH)
    for dtype in DTYPES:
        spec = _spec(dtype, "channels_last")
        got = stages(backend).apply(torch.from_numpy(images), None, spec)
        assert torch.equal(got, _expected(images, spec)), dtype


def test_output_spec_is_validated():
    with pytest.raises(ValueError, match="dtype"):
        OutputSpec("int8")
    with pytest.raises(ValueError, match="layout"):
        OutputSpec("uint8", "nhwc")
    with pytest.raises(ValueError, match="needs mean and std"):
        OutputSpec("float16")
    with pytest.raises(ValueError, match="positive stds"):
        OutputSpec("float32", "nchw", (0.5,), (0.0,))


def test_make_stage_refuses_cupy_on_the_cpu():
    with pytest.raises(
        ValueError, match=r"backend='cupy' runs on a CUDA GPU, not on the CPU; there use one of \('native'"
    ):
        make_stage("cupy", "cpu", max_batch=1, height=4, width=4)
    with pytest.raises(ValueError, match="runs on the CPU, not on a CUDA GPU"):
        resolve_backend("native", "gpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_backend(None, "tpu")


def test_make_stage_of_an_unknown_name_names_the_choices():
    with pytest.raises(ValueError, match="backend must be one of") as error:
        make_stage("pillow", "cpu", max_batch=1, height=4, width=4)
    for name in ("cupy", "native", "dali", "emulated", "numpy", "pil", "'pillow'"):
        assert name in str(error.value)


def test_every_module_registers_its_backends_with_labels_and_devices():
    known = registration.stages()
    assert set(known) == {"cupy", "native", "dali", "emulated", "numpy", "pil"}
    assert [s.priority for s in known.values()] == sorted((s.priority for s in known.values()), reverse=True)
    assert len({s.label for s in known.values()}) == len(known)
    assert stage_backend("cupy").devices == ("gpu",) and not stage_backend("dali").any_size
    with pytest.raises(ValueError, match="backend must be one of"):
        stage_backend("opencv")


def test_a_second_registration_under_the_same_name_raises():
    entry = stage_backend("numpy")
    with pytest.raises(ValueError, match="'numpy' is already registered"):
        registration.register_stage(
            "numpy", devices=("cpu",), available=lambda: True, build=entry.build, priority=99, label="x", any_size=True
        )
    assert stage_backend("numpy") is entry  # the first registration stands
    with pytest.raises(ValueError, match="devices must be a non-empty subset"):
        registration.register_stage(
            "tpu-stage",
            devices=("tpu",),
            available=lambda: True,
            build=entry.build,
            priority=0,
            label="x",
            any_size=True,
        )
    assert "tpu-stage" not in registration.stages()


def test_the_backends_register_without_importing_dali_or_cupy():
    """Each backend registers itself when its light module is imported; DALI and CuPy are
    imported only when a stage that needs them is built (here they cannot be imported)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['nvidia.dali'] = sys.modules['cupy'] = None\n"
        "import fastpolicy\n"
        "from fastpolicy.backends.stage import resolve_backend, stage_backend, stages\n"
        "print(sorted(stages()), resolve_backend(None, 'cpu'), stage_backend('dali').available(),"
        " stage_backend('cupy').available())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[0] == "['cupy', 'dali', 'emulated', 'native', 'numpy', 'pil'] native False False"


def _unavailable(monkeypatch, *names: str) -> None:
    """Mark the registered backends ``names`` unavailable here."""
    for name in names:
        entry = stage_backend(name)
        monkeypatch.setitem(registration._STAGES, name, dataclasses.replace(entry, available=lambda: False))


def test_the_default_follows_priority_and_availability(monkeypatch):
    assert resolve_backend(None, "cpu") == "native"  # a C++ compiler is here
    assert default_stage("cpu", any_size=True).name == "native"
    _unavailable(monkeypatch, "native")
    assert resolve_backend(None, "cpu") == "dali"
    assert default_stage("cpu", any_size=True).name == "numpy"  # DALI's stage takes one image size
    _unavailable(monkeypatch, "dali")
    assert resolve_backend(None, "cpu") == "numpy"  # never the slow emulated build by default
    _unavailable(monkeypatch, "cupy")
    with pytest.raises(RuntimeError, match="no policy-stage backend is available on the gpu"):
        resolve_backend(None, "gpu")  # the reference serves a GPU only when asked by name
    with pytest.raises(
        RuntimeError,
        match=r"no policy-stage backend that takes any image size is available on the gpu: 'cupy'.*needs CuPy",
    ):
        default_stage("gpu", any_size=True)
    # a higher-priority registration wins where it is available
    fast = dataclasses.replace(stage_backend("numpy"), name="faster", priority=1000, label="faster")
    monkeypatch.setitem(registration._STAGES, "faster", fast)
    assert resolve_backend(None, "cpu") == "faster"
    assert resolve_backend("numpy", "cpu") == "numpy"  # a name is a lookup, whatever the priorities


@pytest.mark.parametrize("fields", [KERNEL_SLOTS, DALI_SLOTS], ids=["kernels", "dali"])
def test_the_packer_writes_every_slot_into_one_buffer(fields):
    params = _params(4)
    packed = pack(params, HEIGHT, WIDTH, fields)
    views = packed.views()
    assert len(views) == params.k and packed.buffer.ndim == 1
    for slot in views:
        for array in slot.values():
            assert np.shares_memory(array, packed.buffer)
    # one skip code: op -1 → index 0 of every per-op table
    skipped = params.op == NO_OP
    key = "code" if fields is KERNEL_SLOTS else "select"
    for k, slot in enumerate(views):
        assert np.all((slot[key] == 0) == skipped[:, k]) and tuple(slot) == fields.names
    if fields is DALI_SLOTS:
        assert np.array_equal(views[0]["select"], params.op[:, 0] + 1)
        with pytest.raises(ValueError, match="in_rows needs slot fields with row tables"):
            pack(params, HEIGHT, WIDTH, fields, in_rows=np.arange(params.n))
    with pytest.raises(TypeError, match="SlotFields"):
        pack(params, HEIGHT, WIDTH, "kernels")  # type: ignore[arg-type]


def test_the_packer_takes_an_allocator():
    params = _params(5)
    sizes = []

    def allocate(nbytes):
        sizes.append(nbytes)
        return np.zeros(nbytes, np.uint8)

    packed = pack(params, HEIGHT, WIDTH, KERNEL_SLOTS, allocate=allocate)
    assert sizes == [packed.buffer.nbytes] and sizes[0] % 16 == 0


def test_packed_cutout_boxes_are_the_squares_the_reference_cuts():
    """Both backends' packed boxes against the pixels the reference's Cutout changes on a
    black batch (not against each other: both come from the same packed box)."""
    params = sample_policies([Policy([[("Cutout", 9), ("Cutout", 4)]])], N, np.random.default_rng(0))
    assert np.all(params.op == OPS["Cutout"].id)
    kernels, dali = pack(params, HEIGHT, WIDTH, KERNEL_SLOTS).views(), pack(params, HEIGHT, WIDTH, DALI_SLOTS).views()
    black = np.zeros((N, HEIGHT, WIDTH, 3), np.uint8)
    for k in range(params.k):
        op = np.full_like(params.op, NO_OP)
        op[:, k] = params.op[:, k]
        single = dataclasses.replace(params, op=op)  # slot k alone
        cut = np.any(apply_batch(black, single) != 0, axis=3)
        assert cut.any()
        for n in range(N):
            y0, x0, y1, x1 = kernels[k]["box"][n]
            want = np.zeros((HEIGHT, WIDTH), bool)
            want[y0:y1, x0:x1] = True
            assert np.array_equal(cut[n], want), (k, n)
            (ay, ax), (sy, sx) = dali[k]["anchor"][n].astype(int), dali[k]["shape"][n].astype(int)
            want = np.zeros((HEIGHT, WIDTH), bool)
            want[ay : ay + sy, ax : ax + sx] = True
            assert np.array_equal(cut[n], want), (k, n)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_copies_image_major_give_the_policy_major_result(stages, backend):
    """The loader's source yields [N, M, H, W, C] copies, image-major; sample m·N + n is copy m
    of image n, and the stage reads the copies in place."""
    copies = 2
    images = photo_batch(N, HEIGHT, WIDTH)
    assert N % copies == 0
    params = _params(7)
    spec = _spec("float32", "channels_last")
    # image-major: row n·M + m of the stacked copies holds sample m·(N/M) + n
    n = N // copies
    stacked = images.reshape(copies, n, HEIGHT, WIDTH, -1).transpose(1, 0, 2, 3, 4).copy()
    expected = _expected(apply_batch(images, params), spec)
    got = stages(backend).apply(torch.from_numpy(stacked), params, spec)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    assert not torch.equal(got, _expected(apply_batch(stacked.reshape(images.shape), params), spec))


def test_host_buffers_are_reused_only_when_no_view_is_left():
    import gc

    from fastpolicy.backends.kernel_host import HostBuffers

    pool = HostBuffers(keep=2)
    first = pool.empty((4, 3, 8, 8), torch.float32)
    address = first.data_ptr()
    view = first[1:]
    del first
    gc.collect()
    second = pool.empty((4, 3, 8, 8), torch.float32)
    assert second.data_ptr() != address  # a view still holds the first buffer: not handed out again
    second.fill_(1.0)
    view.fill_(2.0)
    assert torch.all(second == 1.0)
    del view
    gc.collect()
    third = pool.empty((4, 3, 8, 8), torch.float32)
    assert third.data_ptr() == address  # the first buffer, back once its last view went
    wide = pool.empty((4, 3, 8, 8), torch.bfloat16)
    assert (
        wide.dtype == torch.bfloat16
        and wide.shape == (4, 3, 8, 8)
        and wide.data_ptr() not in (address, second.data_ptr())
    )
