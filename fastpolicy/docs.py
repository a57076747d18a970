"""The op table of ``docs/ops.md``, generated from the registry: ``python -m fastpolicy.docs`` rewrites it."""

from __future__ import annotations

import sys
from pathlib import Path

from .magnitude import N_BINS, Magnitude
from .registry import OPS, OpSpec
from .spaces import AWS_BINS, STANDARD_BINS, get_space

START, END = "<!-- ops-table:start -->", "<!-- ops-table:end -->"


def _num(x: float) -> str:
    return f"{x:.3g}"


def _advaa(magnitude: Magnitude | None) -> str:
    if magnitude is None:
        return "—"
    lo, hi = magnitude.value(0), magnitude.value(N_BINS - 1)
    prefix = "±" if magnitude.signed else ""
    return f"{prefix}{_num(lo)} → {prefix}{_num(hi)}"


def _aws(spec: OpSpec) -> str:
    if "aws" not in spec.magnitudes:
        return "— (not in AWS)"
    magnitude = spec.magnitudes["aws"]
    if magnitude is None:
        return "—"
    parts = []
    for b in AWS_BINS:
        m = magnitude.value(b, 1) - magnitude.centre
        text = f"±{_num(m)}" if magnitude.signed else _num(m)
        parts.append(f"{_num(magnitude.centre)}{text}" if magnitude.centre else text)
    return ", ".join(parts)


def _bound(spec: OpSpec) -> str:
    tol = spec.tolerance
    return "exact" if tol.max_abs == 0 else f"≤{tol.max_abs} on ≤{tol.fraction:.2%}"


def _standard(spec: OpSpec, space: str) -> str:
    if space not in spec.magnitudes:
        return "—"
    magnitude = spec.magnitudes[space]
    if magnitude is None:
        return "no magnitude"
    n_bins = get_space(space).n_bins
    lo, hi = magnitude.value(0, 1, n_bins), magnitude.value(n_bins - 1, 1, n_bins)
    if magnitude.centre:
        return f"{_num(magnitude.centre)} ± ({_num(lo - magnitude.centre)} → {_num(hi - magnitude.centre)})"
    prefix = "±" if magnitude.signed else ""
    return f"{prefix}{_num(lo)} → {prefix}{_num(hi)}"


def ops_table() -> str:
    """Markdown table of every registered op: its value range in every space, its PIL bound."""
    titles = {"autoaugment": "AutoAugment", "randaugment": "RandAugment", "trivialaugment_wide": "TrivialAugmentWide"}
    standard_heads = " | ".join(f"{titles.get(s, s)} ({STANDARD_BINS[s]} bins)" for s in STANDARD_BINS)
    rows = [
        f"| op | kind | Adversarial AutoAugment (bins 0→9) | AWS (bins 3, 6, 9) | {standard_heads} | PIL bound |",
        "|---|---|---|---|" + "---|" * len(STANDARD_BINS) + "---|",
    ]
    for name, spec in OPS.items():
        standard = " | ".join(_standard(spec, space) for space in STANDARD_BINS)
        rows.append(
            f"| {name} | {spec.kind} | {_advaa(spec.magnitudes.get('adversarial'))} | {_aws(spec)} | {standard} | "
            f"{_bound(spec)} |"
        )
    return "\n".join(rows)


def render(readme: str) -> str:
    """``readme`` (a Markdown page) with the text between the table markers replaced by :func:`ops_table`."""
    if START not in readme or END not in readme:
        raise ValueError(f"the page lacks the markers {START} … {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{ops_table()}\n{END}{tail}"


def main(argv=None) -> int:
    path = Path(argv[0] if argv else Path(__file__).resolve().parent.parent / "docs" / "ops.md")
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the op table to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
