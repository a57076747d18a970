"""ptxas figures of every policy kernel, from the project's own NVRTC build (no GPU needed).

For each ``extern "C"`` kernel and architecture: registers per thread, spill stores and
loads, stack frame (local memory), static shared memory (all from ptxas ``-v`` through
NVRTC's ``--ptxas-options=-v``), the PTX instructions that touch memory (vector loads and
stores ``.v2``/``.v4``, 32-bit and byte loads from global memory, local loads and stores; in the
kernel and the device functions it calls) and
the resident warps per SM at the launch's block size (:data:`~.kernel_ops.BLOCK_THREADS`),
limited by registers, shared memory and the architecture's warp and block caps.

    python -m fastpolicy.backends.kernel_ptxas              # Markdown table, sm_80 and sm_90
    python -m fastpolicy.backends.kernel_ptxas --arch sm_90 --json
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass

from .kernel_build import nvrtc_compile
from .kernel_ops import BLOCK_THREADS, KERNELS

# Per-SM limits (CUDA C Programming Guide, compute capability table): registers, warps,
# blocks, shared memory (bytes, after the per-block reservation of 1 KiB).
_SM = {
    "sm_80": {"registers": 65536, "warps": 64, "blocks": 32, "shared": 167936},
    "sm_90": {"registers": 65536, "warps": 64, "blocks": 32, "shared": 233472},
}
_REGISTER_UNIT = 256  # registers are allocated per warp in units of 256


@dataclass(frozen=True)
class KernelFigures:
    """One kernel's figures for one architecture (see the module docstring); sizes in bytes."""

    kernel: str
    arch: str
    registers: int
    spill_stores: int
    spill_loads: int
    stack_frame: int
    shared: int
    vector_loads: int
    vector_stores: int
    word_loads: int
    byte_loads: int
    local_accesses: int
    block: int
    resident_warps: int


def resident_warps(arch: str, registers: int, shared: int, block: int) -> int:
    """Warps resident per SM for a kernel of ``registers`` per thread and ``shared`` bytes of
    static shared memory launched with ``block`` threads (0 if it cannot launch)."""
    limits = _SM[arch]
    warps = -(-block // 32)
    per_warp = -(-max(registers, 1) * 32 // _REGISTER_UNIT) * _REGISTER_UNIT
    by_registers = (limits["registers"] // per_warp) // warps
    by_shared = limits["shared"] // (shared + 1024) if shared else limits["blocks"]
    blocks = min(by_registers, by_shared, limits["blocks"], limits["warps"] // warps)
    return blocks * warps


_DEFINITION = re.compile(r"^(?:\.visible\s+|\.weak\s+)?\.(entry|func)\s+(?:\([^)]*\)\s*)?(\w+)\s*\(", re.M)
_CALL = re.compile(r"\bcall(?:\.uni)?\s+(?:\([^)]*\)\s*,\s*)?(\w+)")


def _entries(ptx: str) -> dict[str, str]:
    """PTX of each ``.entry`` followed by the bodies of the ``.func`` functions it calls,
    directly or not (the kernels call a few ``__noinline__`` device functions)."""
    found = [(m.group(1), m.group(2), m.start()) for m in _DEFINITION.finditer(ptx)]
    ends = [start for _, _, start in found[1:]] + [len(ptx)]
    # a function's definition comes after its declaration, so the definition's body is kept
    bodies = {name: ptx[start:end] for (_, name, start), end in zip(found, ends)}
    entries = {}
    for kind, name, _ in found:
        if kind != "entry":
            continue
        reached, todo = [name], [name]
        while todo:
            for callee in _CALL.findall(bodies[todo.pop()]):
                if callee in bodies and callee not in reached:
                    reached.append(callee)
                    todo.append(callee)
        entries[name] = "".join(bodies[n] for n in reached)
    return entries


def _count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text))


def ptxas_table(arch: str) -> list[KernelFigures]:
    """:class:`KernelFigures` of every kernel of :data:`~.kernel_ops.KERNELS` for ``arch``."""
    if arch not in _SM:
        raise ValueError(f"arch must be one of {tuple(_SM)}, got {arch!r}")
    ptx, log = nvrtc_compile(arch, ("--ptxas-options=-v",))
    bodies = _entries(ptx.decode(errors="replace"))
    sections = re.split(r"Compiling entry function '(\w+)'", log)
    info = {sections[i]: sections[i + 1] for i in range(1, len(sections) - 1, 2)}
    rows = []
    for name in KERNELS:
        text, body = info.get(name, ""), bodies.get(name, "")
        if not text or not body:
            raise RuntimeError(f"no ptxas figures for kernel {name!r} in NVRTC's output for {arch}")

        def number(pattern: str, text: str = text) -> int:
            match = re.search(pattern, text)
            return int(match.group(1)) if match else 0

        registers, shared = number(r"Used (\d+) registers"), number(r"(\d+) bytes smem")
        block = BLOCK_THREADS[name]
        rows.append(
            KernelFigures(
                kernel=name,
                arch=arch,
                registers=registers,
                spill_stores=number(r"(\d+) bytes spill stores"),
                spill_loads=number(r"(\d+) bytes spill loads"),
                stack_frame=number(r"(\d+) bytes stack frame"),
                shared=shared,
                vector_loads=_count(r"\bld\.[\w.]*\.v[248]\.", body),
                vector_stores=_count(r"\bst\.[\w.]*\.v[248]\.", body),
                word_loads=_count(r"\bld\.global(?:\.nc)?\.[usb]32\b", body),
                byte_loads=_count(r"\bld\.global(?:\.nc)?\.[us]8\b", body),
                local_accesses=_count(r"\b(?:ld|st)\.local\.", body),
                block=block,
                resident_warps=resident_warps(arch, registers, shared, block),
            )
        )
    return rows


def markdown(rows: list[KernelFigures]) -> str:
    """The figures as a Markdown table."""
    head = (
        "| kernel | arch | registers | spill st/ld (B) | stack (B) | smem (B) | vector ld | vector st "
        "| u32 global ld | u8 global ld | local ld/st | block | warps/SM |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| `{r.kernel}` | {r.arch} | {r.registers} | {r.spill_stores}/{r.spill_loads} | {r.stack_frame} "
            f"| {r.shared} | {r.vector_loads} | {r.vector_stores} | {r.word_loads} | {r.byte_loads} "
            f"| {r.local_accesses} | {r.block} | {r.resident_warps} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", action="append", choices=sorted(_SM), help="repeatable (default: sm_80 and sm_90)")
    parser.add_argument("--json", action="store_true", help="JSON rows instead of a Markdown table")
    args = parser.parse_args(argv)
    rows = [row for arch in args.arch or sorted(_SM) for row in ptxas_table(arch)]
    print(json.dumps([asdict(r) for r in rows], indent=1) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
