"""The kernels' source and build caches: every edit reaches the compiled code; caches are
private, and untrusted builds are rebuilt."""

from __future__ import annotations

import os
import shutil
import stat


def test_kernel_source_inlines_every_kernel_file(tmp_path, monkeypatch):
    """CuPy caches binaries by the code string; with ``#include`` in it, an edited kernel file
    kept the stale binary. The string must hold every file, so any edit changes it."""
    from fastpolicy.backends import kernel_ops

    copy = tmp_path / "kernels"
    shutil.copytree(kernel_ops.KERNEL_DIR, copy)
    monkeypatch.setattr(kernel_ops, "KERNEL_DIR", copy)
    source = kernel_ops.kernel_source()
    assert '#include "' not in source
    for name in ("policy.cu", "stats.cu", "luts.cu", "apply.cu", "common.cuh"):
        assert f'#line 1 "{name}"' in source
    assert source.count('#line 1 "common.cuh"') == 1  # included three times, inlined once
    with open(copy / "common.cuh", "a") as handle:
        handle.write("\n// an edit\n")
    assert kernel_ops.kernel_source() != source


def test_emulator_cache_is_private_and_untrusted_libraries_are_rebuilt(tmp_path, monkeypatch):
    from fastpolicy.backends import kernel_build

    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    kernel_build.emulated_module.cache_clear()
    try:
        library = kernel_build.emulated_module().library
        folder = library.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert kernel_build.trusted_library(library)
        for tamper in (
            lambda: os.chmod(library, 0o666),
            lambda: os.chown(library, 12345, -1) if os.getuid() == 0 else os.chmod(library, 0o622),
        ):
            tamper()
            folder.chmod(0o777)
            assert not kernel_build.trusted_library(library)
            inode = library.stat().st_ino
            kernel_build.emulated_module.cache_clear()
            rebuilt = kernel_build.emulated_module().library
            assert rebuilt == library and library.stat().st_ino != inode and kernel_build.trusted_library(library)
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        link = tmp_path / "elsewhere.so"
        shutil.copy(library, link)
        library.unlink()
        library.symlink_to(link)
        assert not kernel_build.trusted_library(library)  # a link is never loaded
    finally:
        kernel_build.emulated_module.cache_clear()
