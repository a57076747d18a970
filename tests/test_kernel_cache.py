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


def test_a_damaged_cached_library_is_rebuilt_with_one_warning_never_mapped(tmp_path, monkeypatch):
    """A library cut short (1 000 bytes: mapping it and running it is a SIGBUS; 0 bytes: an
    OSError) or overwritten fails its build record (size and SHA-256) and is rebuilt."""
    import warnings

    from fastpolicy.backends import kernel_build

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kernel_build.emulated_module.cache_clear()
    try:
        library = kernel_build.emulated_module().library
        whole = library.read_bytes()
        assert kernel_build.library_problem(library) is None
        for damage in (whole[:1000], b"", whole[:-1] + bytes([whole[-1] ^ 1])):
            # a new file in its place, as another process's damage would be: this process has the
            # old one mapped, and cutting a mapped file short is a SIGBUS here too
            (tmp_path / "damaged.so").write_bytes(damage)
            os.replace(tmp_path / "damaged.so", library)
            assert "differs from its build record" in kernel_build.library_problem(library)
            kernel_build.emulated_module.cache_clear()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                module = kernel_build.emulated_module()
            assert [str(w.message) for w in caught if str(library) in str(w.message)] != []
            assert library.read_bytes() == whole and kernel_build.library_problem(library) is None
            assert module.word_accesses() is not None  # loaded and callable
        kernel_build._stamp_path(library).unlink()
        assert "sha256 is missing" in kernel_build.library_problem(library)
    finally:
        kernel_build.emulated_module.cache_clear()


def test_cxx_with_arguments_is_split_as_a_shell_would(monkeypatch):
    from fastpolicy.backends import kernel_build

    monkeypatch.setenv("CXX", "g++ -DFASTPOLICY_PROBE='a b'")
    assert kernel_build.host_compiler_command() == [shutil.which("g++"), "-DFASTPOLICY_PROBE=a b"]
    assert kernel_build.host_compiler() == shutil.which("g++")
    monkeypatch.setenv("CXX", "no-such-compiler-here -O2")
    assert kernel_build.host_compiler_command() is None
