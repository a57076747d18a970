"""Compiling the policy kernels: NVRTC (a check that needs no GPU), CuPy, and the two host builds.

* :func:`nvrtc_compile` — compile :func:`~.kernel_ops.kernel_source` for an architecture
  with ``cuda.bindings.nvrtc`` (installed with torch); CI does it for sm_80 and sm_90.
* :func:`cupy_module` — a ``cupy.RawModule``, compiled once per device and memoized
  (CuPy also caches the binary on disk).
* :func:`emulated_module` — the *emulated* build (:class:`EmulatedModule`): the same
  sources built for the CPU with g++ against ``kernels/emulate.hpp``, every CUDA thread
  emulated; its functions take the same ``(grid, block, args)`` as CuPy's, with NumPy
  arrays. Tests run every kernel this way where there is no GPU.
* :func:`native_module` — the *native* build (:class:`NativeModule`): the same sources as
  a fast CPU stage (``kernels/host.hpp``: one thread per block, blocks in parallel with
  OpenMP).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np

from .kernel_ops import KERNEL_DIR, KERNELS, NVRTC_OPTIONS, kernel_source


class KernelCompileError(RuntimeError):
    """A kernel source failed to compile; the message holds the compiler's log."""


def _sources_digest(extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(KERNEL_DIR.glob("*.cu*")) + sorted(KERNEL_DIR.glob("*.hpp")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def nvrtc_compile(arch: str = "sm_80", extra_options: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """Compile the kernels to PTX for ``arch`` with NVRTC; returns (ptx, log).

    ``extra_options`` are added to :data:`~.kernel_ops.NVRTC_OPTIONS` (e.g.
    ``("--ptxas-options=-v",)``: ptxas's per-kernel figures in the log, see :func:`ptxas_table`).
    Raises :class:`KernelCompileError` with NVRTC's log on failure.
    """
    from cuda.bindings import nvrtc

    def check(result, what: str):
        error = result[0]
        if error != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise KernelCompileError(f"NVRTC {what} failed: {nvrtc.nvrtcGetErrorString(error)[1].decode()}")
        return result[1:] if len(result) > 2 else (result[1] if len(result) == 2 else None)

    program = check(
        nvrtc.nvrtcCreateProgram(kernel_source().encode(), b"fastpolicy_policy.cu", 0, [], []), "program creation"
    )
    options = [
        f"--gpu-architecture={arch}".encode(),
        f"--include-path={KERNEL_DIR}".encode(),
        *(o.encode() for o in NVRTC_OPTIONS),
        *(o.encode() for o in extra_options),
    ]
    try:
        compiled = nvrtc.nvrtcCompileProgram(program, len(options), options)
        size = check(nvrtc.nvrtcGetProgramLogSize(program), "log size")
        # fresh writable buffers: NVRTC writes into them, and ``b" " * 1`` would be CPython's one
        # shared 1-byte bytes object (writing its NUL changes b" " for the whole process)
        log_buffer = bytearray(size)
        check(nvrtc.nvrtcGetProgramLog(program, log_buffer), "log")
        log = bytes(log_buffer).decode(errors="replace").rstrip("\x00").strip()
        if compiled[0] != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise KernelCompileError(f"kernels in {KERNEL_DIR} do not compile for {arch}:\n{log}")
        size = check(nvrtc.nvrtcGetPTXSize(program), "PTX size")
        ptx = bytearray(size)
        check(nvrtc.nvrtcGetPTX(program, ptx), "PTX")
        return bytes(ptx), log
    finally:
        nvrtc.nvrtcDestroyProgram(program)


@functools.cache
def cupy_module(device_id: int):
    """``cupy.RawModule`` of the kernels for CUDA device ``device_id`` (memoized)."""
    import cupy

    with cupy.cuda.Device(device_id):
        # the code string holds every kernel file (inlined), so CuPy's on-disk cache, keyed on
        # that string, never serves a binary built from older sources
        module = cupy.RawModule(code=kernel_source(), options=NVRTC_OPTIONS)
        module.compile()
    return module


class HostKernel:
    """One kernel of a host build, called like a ``cupy.RawKernel``:
    ``kernel(grid, block, args)`` with NumPy arrays, NumPy scalars and None in ``args``."""

    _SCALARS: ClassVar[dict] = {
        np.dtype(np.int32): ctypes.c_int32,
        np.dtype(np.int64): ctypes.c_int64,
        np.dtype(np.float32): ctypes.c_float,
        np.dtype(np.float64): ctypes.c_double,
    }

    def __init__(self, function, name: str):
        self._function, self.name = function, name

    def _argument(self, i: int, arg):
        if arg is None:
            return ctypes.c_void_p(None)
        if isinstance(arg, np.ndarray):
            if not arg.flags.c_contiguous:
                raise ValueError(f"{self.name}: argument {i} must be C-contiguous")
            return ctypes.c_void_p(arg.ctypes.data)
        if isinstance(arg, np.generic) and arg.dtype in self._SCALARS:
            return self._SCALARS[arg.dtype](arg.item())
        raise TypeError(f"{self.name}: argument {i} is a {type(arg).__name__}; pass a NumPy array or scalar")

    def __call__(self, grid, block, args, **_):
        grid, block = tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))
        values = [self._argument(i, a) for i, a in enumerate(args)]
        pointers = (ctypes.c_void_p * len(values))(*(ctypes.addressof(v) for v in values))
        if self._function(*(ctypes.c_uint(int(v)) for v in grid + block), pointers):
            raise ValueError(f"{self.name}: the native host build runs one thread per block; launched with {block}")


class HostModule:
    """A host build of the kernels (a shared library); ``get_function(name)`` as on
    ``cupy.RawModule``. Subclasses name the build and its entry points' prefix.

    Attributes:
        library: the shared library's path.
        threads_per_block: the launch geometry the build takes (0: any).
    """

    prefix: ClassVar[str] = ""
    threads_per_block: ClassVar[int] = 0

    def __init__(self, library: Path):
        self.library = library
        self._lib = ctypes.CDLL(str(library))

    def get_function(self, name: str) -> HostKernel:
        if name not in KERNELS:
            raise KeyError(f"no kernel {name!r}; kernels: {KERNELS}")
        return HostKernel(getattr(self._lib, f"{self.prefix}{name}"), name)


class EmulatedModule(HostModule):
    """The emulated build (``kernels/emulate.hpp``): every CUDA thread of a block emulated,
    barriers and shared memory as on a device (slow; checks the kernels without a GPU)."""

    prefix = "fp_emulate_"

    def word_accesses(self) -> dict[str, int]:
        """The runs' word accesses since the last call (``kernels/runs.cuh``): 32-bit ``loads``,
        vector ``stores``, and ``misaligned`` ones of either (each a fault on a device)."""
        counts = (ctypes.c_longlong * 3)()
        self._lib.fp_emulate_word_accesses(counts)
        return dict(zip(("loads", "stores", "misaligned"), counts))


class NativeModule(HostModule):
    """The native build (``kernels/host.hpp``): one thread per block, the blocks in
    parallel with OpenMP (the fast CPU stage); launch with ``block=(1,)``."""

    prefix = "fp_host_"
    threads_per_block = 1


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/fastpolicy/emulator`` (default ``~/.cache``): where the host builds are kept."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "fastpolicy" / "emulator"


def _cache_dir() -> Path:
    """:func:`cache_root`, created private (0700); OSError where it cannot be used (a read-only
    file system, an unwritable parent, a path that is a file, another user's folder)."""
    path = cache_root()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"it belongs to another user (uid {info.st_uid})")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)  # ours, but readable or writable by others: make it private
    return path


_PRIVATE: list[Path] = []
"""The private temporary folder of this process's host builds, once the cache proved unusable."""


def _private_dir(error: OSError) -> Path:
    """A private (0700) temporary folder for this process's host builds, removed at exit; the
    first call warns once, naming the unusable cache and why."""
    if not _PRIVATE:
        _PRIVATE.append(Path(tempfile.mkdtemp(prefix="fastpolicy-kernels-")))
        atexit.register(shutil.rmtree, _PRIVATE[0], ignore_errors=True)
        warnings.warn(
            f"the kernels' build cache {cache_root()} is unusable ({error}); building in the private temporary "
            f"folder {_PRIVATE[0]} for this process instead (set XDG_CACHE_HOME to a writable folder of yours "
            "to keep the builds)",
            RuntimeWarning,
            stacklevel=4,
        )
    return _PRIVATE[0]


def library_problem(path: Path) -> str | None:
    """Why a cached shared library may not be loaded (None: it may): it must be a regular file
    (not a link) owned by this user and writable by nobody else, and match the size and SHA-256
    recorded beside it when it was built (``<name>.sha256``, held to the same rules). A library
    cut short or overwritten would otherwise be mapped and crash the process (SIGBUS) when run."""

    def unsafe(file: Path) -> str | None:
        try:
            info = file.lstat()
        except FileNotFoundError:
            return "missing"
        if not stat.S_ISREG(info.st_mode):
            return f"{file.name} is not a regular file"
        if info.st_uid != os.getuid():
            return f"{file.name} belongs to another user (uid {info.st_uid})"
        if stat.S_IMODE(info.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{file.name} is writable by others"
        return None

    stamp = _stamp_path(path)
    problem = unsafe(path) or unsafe(stamp)
    if problem is not None:
        return problem if problem != "missing" or not path.exists() else f"{stamp.name} is missing"
    try:
        recorded = stamp.read_text().split()
        actual = _fingerprint(path)
    except (OSError, UnicodeDecodeError) as error:
        return f"unreadable ({error})"
    if recorded != actual:
        return f"{path.name} differs from its build record ({' '.join(actual)} ≠ {' '.join(recorded)[:90]})"
    return None


def trusted_library(path: Path) -> bool:
    """Whether a cached shared library may be loaded (:func:`library_problem` finds nothing)."""
    return library_problem(path) is None


def _stamp_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _fingerprint(library: Path) -> list[str]:
    """``[size in bytes, SHA-256 hex]`` of ``library``'s contents."""
    data = library.read_bytes()
    return [str(len(data)), hashlib.sha256(data).hexdigest()]


def host_compiler_command() -> list[str] | None:
    """``$CXX`` (default g++) split as a shell splits it (``ccache g++``, ``g++ -march=native``),
    its program found on PATH; None if there is none (or ``$CXX`` cannot be split: one warning)."""
    value = os.environ.get("CXX") or "g++"
    try:
        words = shlex.split(value)
    except ValueError as error:
        warnings.warn(f"CXX={value!r} cannot be split into words ({error}); no host build", RuntimeWarning, 2)
        return None
    program = shutil.which(words[0]) if words else None
    return None if program is None else [program, *words[1:]]


def host_compiler() -> str | None:
    """The program of :func:`host_compiler_command` (``$CXX``'s first word, default g++), or None."""
    command = host_compiler_command()
    return None if command is None else command[0]


_FAILED: dict[tuple[str, ...], KernelCompileError] = {}
"""Host builds that failed in this process, by compile command and source digest (not retried)."""


def _host_library(header: str, macro: str, options: tuple[str, ...]) -> Path:
    """The kernels compiled for this CPU with ``$CXX`` against ``kernels/<header>``, cached by
    source hash in a private folder (a cached file that is not :func:`trusted_library` is
    rebuilt; an unusable cache folder: a private temporary one, with one warning);
    :class:`KernelCompileError` with the compiler's output if they do not build."""
    compiler = host_compiler_command()
    if compiler is None:
        raise KernelCompileError("the kernels' host build needs a C++20 compiler (g++); set CXX to use another")
    source = f'#include "{header}"\n' + kernel_source() + "".join(f"{macro}({name})\n" for name in KERNELS)
    command = [*compiler, "-std=c++20", *options, "-fPIC", "-shared", "-ffp-contract=off", f"-I{KERNEL_DIR}"]
    name = f"policy-{header.split('.')[0]}-{_sources_digest(source + ' '.join(command))}.so"  # $CXX's flags too
    key = (*command, name)
    if key in _FAILED:
        raise _FAILED[key]
    try:
        try:
            return _build(_cache_dir() / name, command, source)
        except OSError as error:  # the cache cannot be used: build where only this process looks
            return _build(_private_dir(error) / name, command, source)
    except KernelCompileError as error:
        _FAILED[key] = error
        raise


def build_host_library(source_name: str, options: tuple[str, ...], prefix: str) -> Path:
    """The shared library ``kernels/<source_name>`` compiles to with ``$CXX`` and ``options``
    (and ``-I kernels/``: it may include the kernels' headers, ``#include "common.cuh"``):
    cached by a digest of the source, the headers it includes and the command (beside the
    kernels' host builds; a private temporary folder where that cache is unusable).
    KernelCompileError without a compiler or when the build fails."""
    from .kernel_ops import KERNEL_DIR

    compiler = host_compiler_command()
    if compiler is None:
        raise KernelCompileError("no C++ compiler (g++; set CXX to use another)")
    source = (KERNEL_DIR / source_name).read_text(encoding="utf-8")
    command = [*compiler, *options, f"-I{KERNEL_DIR}"]
    texts = [source, *(header.read_text(encoding="utf-8") for header in _included(source, KERNEL_DIR))]
    digest = hashlib.sha256(("\0".join(texts) + "\0" + " ".join(command)).encode()).hexdigest()[:16]
    name = f"{prefix}-{digest}.so"
    try:
        return _build(_cache_dir() / name, command, source)
    except OSError as error:  # the cache cannot be used: build where only this process looks
        return _build(_private_dir(error) / name, command, source)


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def _included(source: str, folder: Path) -> list[Path]:
    """The files of ``folder`` that ``source`` includes (``#include "name"``), and theirs, each
    once, in a fixed order; a name not in ``folder`` (or included with ``<name>``) is left to
    the compiler and not digested."""
    found: list[Path] = []
    pending = [source]
    while pending:
        for name in _INCLUDE.findall(pending.pop()):
            path = folder / name
            if path.is_file() and path not in found:
                found.append(path)
                pending.append(path.read_text(encoding="utf-8"))
    return found


class HostLibrary:
    """A host-only helper library (``kernels/<source>``, built by :func:`build_host_library` at
    first use and kept for the process): :meth:`get` gives its ctypes ``CDLL``, with
    ``declare(library)`` applied (argument and result types), or None where it cannot be built —
    quietly without a compiler when ``quiet_without_compiler``, else with one ``RuntimeWarning``
    naming ``what`` and what runs ``instead``. Thread-safe. ``loaded`` holds the result (a test
    sets it to ``[None]`` for "unavailable", or ``[]`` to build again)."""

    def __init__(self, source: str, options: tuple[str, ...], prefix: str, declare, what: str, instead: str,
                 quiet_without_compiler: bool = False):  # fmt: skip
        self.source, self.options, self.prefix, self.declare = source, options, prefix, declare
        self.what, self.instead, self.quiet = what, instead, quiet_without_compiler
        self.loaded: list = []
        self._lock = threading.Lock()

    def get(self):
        """The library, or None (see the class docstring)."""
        if self.loaded:
            return self.loaded[0]
        with self._lock:
            if not self.loaded:
                self.loaded.append(self._load())
        return self.loaded[0]

    def _load(self):
        if self.quiet and host_compiler() is None:
            return None
        try:
            library = ctypes.CDLL(str(build_host_library(self.source, self.options, self.prefix)))
        except (KernelCompileError, OSError) as error:
            warnings.warn(f"{self.what} is unavailable ({error}); {self.instead}", RuntimeWarning, stacklevel=5)
            return None
        self.declare(library)
        return library


def _build(target: Path, command: list[str], source: str) -> Path:
    """``target`` (a trusted cached library, or built now: compiled in a temporary folder
    beside it, then moved in atomically, its build record first, so concurrent builders agree on
    the file). A cached library that is there but fails :func:`library_problem` (damaged,
    tampered with) is rebuilt with one warning naming it."""
    problem = library_problem(target)
    if problem is None:
        return target
    if os.path.lexists(target) and not problem.endswith(".sha256 is missing"):  # (a build from before the records)
        warnings.warn(f"the cached kernel library {target} is unusable ({problem}); rebuilding it", RuntimeWarning, 3)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        unit = Path(work) / "policy_host.cpp"
        unit.write_text(source)
        built = Path(work) / target.name
        try:
            result = subprocess.run([*command, str(unit), "-o", str(built)], capture_output=True, text=True)
        except OSError as error:  # the compiler itself cannot be run
            raise KernelCompileError(f"{command[0]} cannot be run: {error}") from None
        if result.returncode != 0 or not built.is_file():
            output = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}, no output"
            raise KernelCompileError(f"{' '.join(command)} failed:\n{output}")
        built.chmod(0o700)
        stamp = _stamp_path(built)
        stamp.write_text(" ".join(_fingerprint(built)) + "\n")
        stamp.chmod(0o600)
        os.replace(stamp, _stamp_path(target))
        os.replace(built, target)
    return target


@functools.cache
def emulated_module() -> EmulatedModule:
    """The emulated build of the kernels (:class:`EmulatedModule`), compiled at first use."""
    return EmulatedModule(_host_library("emulate.hpp", "FP_EMULATE", ("-O2",)))


@functools.cache
def native_module() -> NativeModule:
    """The native build of the kernels (:class:`NativeModule`), compiled at first use."""
    return NativeModule(_host_library("host.hpp", "FP_HOST", ("-O3", "-fopenmp")))
