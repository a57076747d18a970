"""The fast CPU stage (``backend="native"``): the CUDA kernel sources built for the host with
OpenMP, one block per sample. It must equal the NumPy reference pixel for pixel (every op at
every bin: ``tests/test_stage.py``; here mixed slots, fill and the fused float output)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import photo_batch

from fastpolicy import OPS, reference, spaces
from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.backends.protocol import normalization
from fastpolicy.sampling import complete


@pytest.fixture(scope="module")
def stage():
    return KernelPolicyStage.native()


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_mixed_slots_fill_and_fused_float_output(stage, grey):
    space = spaces.adversarial()
    ids = np.array([OPS[name].id for name in space.ops] + [-1])
    rng = np.random.default_rng(3)
    images = photo_batch(64, 45, 61, grey)
    for seed in range(3):
        params = complete(rng.choice(ids, (64, 3)), rng.integers(0, 10, (64, 3)), space, np.random.default_rng(seed))
        for fill in (128, 0):
            np.testing.assert_array_equal(
                stage.apply(images, params, fill=fill), reference.apply_batch(images, params, fill=fill)
            )
    mean, inv_std = normalization([0.5] * images.shape[3], [0.25] * images.shape[3])
    out = stage.apply(images, params, output="float32", mean=mean, inv_std=inv_std)
    want = (reference.apply_batch(images, params).astype(np.float32) - mean) * inv_std
    np.testing.assert_array_equal(out, want.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(stage.apply(images, None), images)


def test_the_native_build_refuses_a_multi_thread_launch():
    from fastpolicy.backends.kernel_build import NativeModule, native_module

    module = native_module()
    assert isinstance(module, NativeModule) and module.threads_per_block == 1
    kernel = module.get_function("fp_apply")
    with pytest.raises(ValueError, match="one thread per block"):
        kernel(
            (1, 1), (256,), [np.zeros(1, np.uint8)] * 3 + [np.int32(0)] + [None] * 2 + [np.int32(0)] * 5 + [None] * 9
        )


@pytest.fixture
def fresh_builds(monkeypatch):
    """The host builds forgotten by this process (rebuilt or reloaded on the next call), and
    no private folder or failure from earlier tests; restored afterwards."""
    from fastpolicy.backends import kernel_build, kernel_host

    monkeypatch.setattr(kernel_build, "_PRIVATE", [])
    monkeypatch.setattr(kernel_build, "_FAILED", {})
    monkeypatch.setattr(kernel_host, "_REPORTED", set())
    for build in (kernel_build.native_module, kernel_build.emulated_module):
        build.cache_clear()
    yield kernel_build
    for build in (kernel_build.native_module, kernel_build.emulated_module):
        build.cache_clear()


@pytest.mark.parametrize("cause", ["a file", "read-only", "another user's"])
def test_an_unusable_cache_builds_in_a_private_folder_with_one_warning(tmp_path, monkeypatch, fresh_builds, cause):
    import errno
    import stat
    import warnings

    kernel_build = fresh_builds
    root = tmp_path / "cache"
    if cause == "a file":
        root.write_text("not a folder")
    elif cause == "read-only":
        monkeypatch.setattr(
            kernel_build.Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only"))
        )
    else:
        monkeypatch.setattr(kernel_build.os, "getuid", lambda: 12345)  # the folder's owner is not us
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = fresh_builds.native_module()
        second = fresh_builds.emulated_module()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and str(kernel_build.cache_root()) in messages[0], messages
    folder = first.library.parent
    assert second.library.parent == folder and not str(folder).startswith(str(root))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    images = photo_batch(8, 12, 14)
    params = complete(
        np.full((8, 1), OPS["Rotate"].id), np.arange(8)[:, None], spaces.adversarial(), np.random.default_rng(0)
    )
    np.testing.assert_array_equal(
        KernelPolicyStage(first, np, 1).apply(images, params), reference.apply_batch(images, params)
    )


def test_a_failing_compiler_leaves_the_default_to_a_backend_that_needs_no_build(tmp_path, monkeypatch, fresh_builds):
    import warnings

    from fastpolicy.backends.kernel_build import KernelCompileError
    from fastpolicy.backends.stage import default_stage, make_stage, resolve_backend

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))  # nothing cached: the compiler must run
    monkeypatch.setenv("CXX", "/bin/false")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_backend(None, "cpu") == "dali"
        assert default_stage("cpu", any_size=True).name == "numpy"
        assert resolve_backend(None, "cpu") == "dali"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "'native' policy stage does not build here" in messages[0], messages
    assert "/bin/false" in messages[0]
    with pytest.raises(KernelCompileError, match="/bin/false .* failed"):  # asked by name: a clear error
        make_stage("native", "cpu", max_batch=1, height=1, width=1)
