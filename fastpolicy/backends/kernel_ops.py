"""The CUDA kernels' side of the op registry, and the kernel source built from it.

Every registry op gets a :class:`KernelOp` (``register_backend("kernels", name)``) naming
the device functions in ``kernels/`` that implement it. They follow from the op's
kind and reference function, so no second list of ops is kept:

* ``affine`` → ``apply_warp`` (PIL's 16.16 fixed-point engine, in int32), ``apply_warp_wide``
  (the same in int64) for matrices whose sums could leave int32 at the image's size
  (:func:`~.kernel_pack.narrow_warp`), or ``apply_shift`` for samples whose matrix is a pure
  translation (PIL's float engine);
* ``lut`` → ``apply_lut`` after the builder ``lut_<name>`` of the reference's
  ``<name>_lut`` (``kernels/luts.cu``);
* ``blend``, ``special`` → ``apply_<reference function name>`` (``kernels/apply.cu``);
* ``filter`` (GaussianBlur) → ``fp_blur``'s box passes (``kernels/blur.cu``, weights from
  :attr:`KernelOp.passes`), run after the slot's ``fp_apply`` (which copies such samples) and
  writing those samples' output over the copy.

Ops added with :func:`~fastpolicy.registry.register_op` get a :class:`KernelOp` when they are
geometric (``apply_warp``, their matrix) or tables (``apply_lut`` after ``lut_table``, which
reads the table the host builds from the op's ``lut(value)``); an op given by its reference
alone has none, and the kernel stages refuse it by name.

:func:`kernel_source` prepends the generated dispatch tables ``FP_APPLIES`` and
``FP_LUTS`` (X-macros: ``X(code, function)``) to ``kernels/policy.cu``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..reference import blur
from ..registry import BUILTIN_OPS, OPS, on_change, register_backend


def _kernel_dir() -> Path:
    checkout = Path(__file__).resolve().parents[2] / "kernels"  # a source checkout / editable install
    return checkout if (checkout / "policy.cu").is_file() else Path(__file__).resolve().parents[1] / "kernels"


KERNEL_DIR = _kernel_dir()
"""Where the ``.cu`` sources live: the repository's top-level ``kernels/``, shipped in
wheels as ``fastpolicy/kernels/``."""

KERNELS = ("fp_histograms", "fp_build_luts", "fp_apply", "fp_policy", "fp_blur")
"""``extern "C"`` kernels of ``kernels/policy.cu``: the per-slot three in launch order, the
fused one (``fp_policy``: two slots, statistics and tables inside the block), then ``fp_blur``
(the box passes of the ops that have them: :attr:`KernelOp.passes`)."""

BLOCK_THREADS = {"fp_histograms": 256, "fp_build_luts": 128, "fp_apply": 256, "fp_policy": 256, "fp_blur": 256}
"""Threads per block of each kernel's launch on a device (and in the emulated build)."""

COPY = "apply_copy"
"""Apply function of skipped slots (code 0)."""

SHIFT = "apply_shift"
"""Apply function of affine samples whose matrix is a translation."""

WIDE_WARP = "apply_warp_wide"
"""Apply function of warps whose fixed-point sums need int64 at the image's size."""

RUN = 4
"""Output pixels per thread of the device loops (``FP_RUN``, ``kernels/runs.cuh``): a grid
needs one thread per run of a row, not per pixel."""

OUTPUT_TYPES = {"uint8": 0, "float32": 1, "float16": 2, "bfloat16": 3}
"""``fp_apply``'s element types (low bits of ``out_mode``): uint8 as is, or normalized floats."""

PLANAR = 4
"""``out_mode`` bit: write NCHW; without it NHWC (channels-last)."""


@dataclass(frozen=True)
class KernelOp:
    """How the fused kernels apply one op.

    Attributes:
        apply: device function computing an output pixel (``kernels/apply.cu``).
        lut: device function building the op's lookup table (``kernels/luts.cu``), for
            ``lut`` ops; None otherwise.
        ivalue: maps values (float64[N]) to the int32 parameter a builder reads, for ops
            whose table is defined on an integer (Solarize's threshold, Posterize's bits).
    """

    apply: str
    lut: str | None = None
    ivalue: Callable[[np.ndarray], np.ndarray] | None = None
    table: Callable[[float], np.ndarray] | None = None
    """A registered table op's ``lut(value)`` → uint8[256]: built on the host per value,
    read by ``lut_table`` (its integer parameter is the table's row)."""
    passes: Callable[[np.ndarray], np.ndarray] | None = None
    """A filter op's values (float64 [B]) → int32 [B, 3], ``(r, ww, fw)`` of each one's box passes
    (``fp_blur``, ``kernels/blur.cu``), run after the slot's apply (which copies such samples)
    over their rows of its output. Such an op's table entry does not depend on its value."""


def _solarize_threshold(values: np.ndarray) -> np.ndarray:
    # For an integer level v, v < t exactly when v < ceil(t).
    return np.clip(np.ceil(values), 0, 256)


def _posterize_bits(values: np.ndarray) -> np.ndarray:
    bits = np.trunc(values)
    if np.any((bits < 0) | (bits > 8)):
        raise ValueError(f"Posterize bits must be in [0, 8], got {values[(bits < 0) | (bits > 8)][0]!r}")
    return bits


def _solarize_add(values: np.ndarray) -> np.ndarray:
    add = np.trunc(values)
    if np.any(add < 0):
        raise ValueError(f"SolarizeAdd's addend must be ≥ 0, got {values[add < 0][0]!r}")
    return np.minimum(add, 255)


_IVALUES = {"Solarize": _solarize_threshold, "Posterize": _posterize_bits, "SolarizeAdd": _solarize_add}


def _kernel_op(spec) -> KernelOp:
    if spec.kind == "filter":
        if spec.reference is not blur.gaussian_blur:
            raise ValueError(f"op {spec.name!r}: the kernels' filter passes are GaussianBlur's")
        return KernelOp(COPY, passes=blur.box_weights_of)
    if spec.kind == "affine":
        return KernelOp("apply_warp")
    if spec.kind == "lut":
        builder = spec.reference.lut.__name__.removesuffix("_lut")
        return KernelOp("apply_lut", lut=f"lut_{builder}", ivalue=_IVALUES.get(spec.name))
    return KernelOp(f"apply_{spec.reference.__name__}")


TABLE = "lut_table"
"""The builder of registered table ops: it copies the host-built table of the entry."""


def _registered_kernel_op(spec) -> KernelOp | None:
    """A registered op's kernel form, or None (given by its reference alone)."""
    if spec.kind == "affine":
        return KernelOp("apply_warp")
    if spec.kind == "lut":
        return KernelOp("apply_lut", lut=TABLE, table=spec.reference.table)
    return None


for _name in BUILTIN_OPS:
    register_backend("kernels", _name)(_kernel_op(OPS[_name]))


@on_change
def _attach_registered() -> None:
    for spec in OPS.values():
        if "kernels" not in spec.backends and spec.name not in BUILTIN_OPS:
            kernel_op = _registered_kernel_op(spec)
            if kernel_op is not None:
                register_backend("kernels", spec.name)(kernel_op)


_attach_registered()


def _unique(names) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n is not None))


APPLY_FUNCTIONS = _unique([COPY] + [OPS[n].backends["kernels"].apply for n in BUILTIN_OPS] + [SHIFT, WIDE_WARP])
"""Apply functions by code: ``APPLY_FUNCTIONS[code]`` (code 0 copies); the built-in ops'
(registered ops use ``apply_warp`` and ``apply_lut``)."""

LUT_BUILDERS = _unique([*(OPS[n].backends["kernels"].lut for n in BUILTIN_OPS), TABLE])
"""Table builders by kind: ``LUT_BUILDERS[kind]``; the built-in ops', then :data:`TABLE`."""


STATISTICS_READ = {None: (0, 0), "mean": (1, 0), "minmax": (0, 1), "histogram": (0, 1)}
"""An op's ``stats`` → the histograms its table builder reads: (grey L, each channel's)."""


def _builder_statistics(builder: str) -> tuple[int, int]:
    """(grey, channels): whether any op built by ``builder`` reads each histogram."""
    reads = [STATISTICS_READ[OPS[n].stats] for n in BUILTIN_OPS if OPS[n].backends["kernels"].lut == builder]
    return max((r[0] for r in reads), default=0), max((r[1] for r in reads), default=0)


def dispatch_tables() -> str:
    """The generated ``#define FP_APPLIES(X)``, ``#define FP_LUTS(X)`` and ``#define
    FP_LUT_STATISTICS(X)`` lines (``X(kind, grey, channels)``: which histograms builder
    ``kind`` reads, 0 or 1 each; the native build counts only those)."""

    def table(macro: str, names) -> str:
        return f"#define {macro}(X) " + " ".join(f"X({i}, {name})" for i, name in enumerate(names))

    statistics = "#define FP_LUT_STATISTICS(X) " + " ".join(
        "X({}, {}, {})".format(i, *_builder_statistics(name)) for i, name in enumerate(LUT_BUILDERS)
    )
    return table("FP_APPLIES", APPLY_FUNCTIONS) + "\n" + table("FP_LUTS", LUT_BUILDERS) + "\n" + statistics + "\n"


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.MULTILINE)


def inline_includes(text: str, source: str = "<generated>", seen: set[str] | None = None) -> str:
    """``text`` with every ``#include "file"`` of :data:`KERNEL_DIR` replaced by the file's
    text, recursively, each file once (the sources are ``#pragma once``); ``#line``
    directives keep compiler messages pointing at the real file and line.

    The result is the *whole* program, so a cache keyed on the source string (CuPy's
    on-disk cache, NVRTC) changes whenever any kernel file changes.
    """
    seen = set() if seen is None else seen
    parts, last = [], 0
    for match in _INCLUDE.finditer(text):
        name = match.group(1)
        path = KERNEL_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f'{source}: #include "{name}" not found in {KERNEL_DIR}')
        line = text.count("\n", 0, match.end()) + 2  # the line after the directive
        parts.append(text[last : match.start()])
        if name not in seen:
            seen.add(name)
            body = inline_includes(path.read_text(encoding="utf-8"), name, seen).replace("#pragma once", "")
            parts.append(f'#line 1 "{name}"\n{body}\n#line {line} "{source}"')
        last = match.end()
    parts.append(text[last:])
    return "".join(parts)


def kernel_source() -> str:
    """The CUDA translation unit: dispatch tables, then ``kernels/policy.cu`` with every
    included kernel file inlined (:func:`inline_includes`; no ``-I`` needed)."""
    if not (KERNEL_DIR / "policy.cu").is_file():
        raise FileNotFoundError(f"fastpolicy's CUDA sources are missing: {KERNEL_DIR / 'policy.cu'}")
    return inline_includes(dispatch_tables() + '#include "policy.cu"\n')


NVRTC_OPTIONS = ("--fmad=false", "-std=c++17")
"""No fused multiply-adds: the blends and filters must round like the reference."""


def per_sample(name: str, values: np.ndarray) -> np.ndarray:
    """int32[N]: op ``name``'s integer parameter for float64 values (0 if it has none)."""
    convert = kernel_op(name).ivalue
    return np.zeros(len(values), np.int32) if convert is None else convert(values).astype(np.int32)


def kernel_op(name: str) -> KernelOp:
    """Op ``name``'s :class:`KernelOp`; ValueError naming the op where it has none (an op
    registered by its reference alone)."""
    found = OPS[name].backends.get("kernels")
    if found is None:
        raise ValueError(
            f"op {name!r} has no kernel implementation (it was registered with a reference function "
            "alone): the kernel stages (native, emulated, cupy) cannot run it; the 'reference' and "
            "'pil' stages can"
        )
    return found


__all__ = [
    "APPLY_FUNCTIONS",
    "BLOCK_THREADS",
    "KERNELS",
    "KERNEL_DIR",
    "LUT_BUILDERS",
    "NVRTC_OPTIONS",
    "OUTPUT_TYPES",
    "PLANAR",
    "RUN",
    "SHIFT",
    "WIDE_WARP",
    "KernelOp",
    "dispatch_tables",
    "inline_includes",
    "kernel_op",
    "kernel_source",
    "per_sample",
]
