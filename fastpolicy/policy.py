"""Policies of sub-policies, as in AutoAugment and Adversarial AutoAugment.

A :class:`Policy` is a list of sub-policies; a sub-policy is a short sequence of
:class:`OpChoice` (op name, magnitude bin, probability). Each sample picks one
sub-policy uniformly at random and applies its ops in order, each with its
probability (1.0 in Adversarial AutoAugment). :meth:`Policy.sample` returns the
per-sample arrays (:class:`~fastpolicy.params.PolicyParams`) a backend consumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import jsonio
from .jsonio import PolicyFormatError
from .params import NO_OP, PolicyParams
from .registry import OPS, get_op
from .sampling import SubPolicyTables, complete
from .spaces import SearchSpace, get_space

FORMAT = "fastpolicy.policy"


@dataclass(frozen=True)
class OpChoice:
    """One op of a sub-policy: registry name, magnitude bin, and probability of being applied."""

    op: str
    bin: int
    prob: float = 1.0

    def to_dict(self) -> dict:
        out = {"op": self.op, "bin": self.bin}
        if self.prob != 1.0:
            out["prob"] = self.prob
        return out


class Policy(jsonio.JsonFile):
    """Sub-policies over one search space.

    Args:
        sub_policies: sequence of sub-policies, each a sequence of :class:`OpChoice` or
            ``(op, bin)`` / ``(op, bin, prob)`` tuples; all non-empty.
        space: ``"adversarial"`` (default) or ``"aws"``: whose ops and bin→value
            mappings apply.

    Raises:
        ValueError: an unknown op, an op outside the space, a bin out of range, a
            probability outside [0, 1], or an empty policy / sub-policy; the message
            names the sub-policy and slot.
    """

    def __init__(self, sub_policies, space: str = "adversarial"):
        self.space: SearchSpace = get_space(space)
        parsed = []
        for i, sub in enumerate(sub_policies):
            choices = []
            for j, choice in enumerate(sub):
                where = f"sub-policy {i}, op {j}"
                if not isinstance(choice, OpChoice):
                    if not isinstance(choice, (tuple, list)) or len(choice) not in (2, 3):
                        raise ValueError(f"{where}: expected (op, bin[, prob]), got {choice!r}")
                    choice = OpChoice(*choice)
                try:
                    get_op(choice.op)
                    self.space.check_bin(choice.op, choice.bin)
                except KeyError as err:
                    raise ValueError(f"{where}: {err.args[0]}") from None
                except ValueError as err:
                    raise ValueError(f"{where}: {err}") from None
                if not isinstance(choice.prob, (int, float)) or not 0.0 <= choice.prob <= 1.0:
                    raise ValueError(f"{where}: probability {choice.prob!r} outside [0, 1]")
                choices.append(OpChoice(choice.op, int(choice.bin), float(choice.prob)))
            if not choices:
                raise ValueError(f"sub-policy {i} is empty")
            parsed.append(tuple(choices))
        if not parsed:
            raise ValueError("a policy needs at least one sub-policy")
        self.sub_policies: tuple[tuple[OpChoice, ...], ...] = tuple(parsed)
        self.sub_policy_tables: SubPolicyTables = self._build_tables()
        """The sub-policies as arrays (read-only); how :func:`~fastpolicy.sampling.sample_policies`
        stacks this policy with others of its shape."""

    @property
    def n_ops(self) -> int:
        """Op slots K of the longest sub-policy (the K of sampled parameters)."""
        return self.sub_policy_tables.n_ops

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """int64[S, K] op ids, int64[S, K] bins, float64[S, K] probabilities (short
        sub-policies are padded with op -1, probability 0). Writable copies."""
        t = self.sub_policy_tables
        return t.op.copy(), t.bin.copy(), t.prob.copy()

    def _build_tables(self) -> SubPolicyTables:
        s, k = len(self.sub_policies), max(len(sub) for sub in self.sub_policies)
        ops = np.full((s, k), NO_OP, dtype=np.int64)
        bins = np.zeros((s, k), dtype=np.int64)
        probs = np.zeros((s, k))
        for i, sub in enumerate(self.sub_policies):
            for j, choice in enumerate(sub):
                ops[i, j], bins[i, j], probs[i, j] = OPS[choice.op].id, choice.bin, choice.prob
        for table in (ops, bins, probs):
            table.flags.writeable = False
        return SubPolicyTables(ops, bins, probs)

    def choose(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """int64[n, K] op ids and bins: a uniformly chosen sub-policy per sample, each op kept
        with its probability (skipped: op -1). The sampler interface of :mod:`fastpolicy.sampling`."""
        return self.sub_policy_tables.choose(n, rng)

    def sample(self, n: int, rng: np.random.Generator, policy_index: int = 0, version: int = 0) -> PolicyParams:
        """Per-sample parameters for ``n`` images (:meth:`choose`, then signs, Cutout
        centres and SamplePairing partners drawn from ``rng``)."""
        return complete(*self.choose(n, rng), self.space, rng, policy=policy_index, version=version)

    @classmethod
    def random(
        cls, rng: np.random.Generator, space: str = "adversarial", n_sub_policies: int = 5, n_ops: int = 2
    ) -> Policy:
        """A uniformly random policy (Adversarial AutoAugment's shape by default)."""
        sp = get_space(space)
        return cls(
            [
                [(sp.ops[rng.integers(len(sp.ops))], int(rng.integers(sp.n_bins))) for _ in range(n_ops)]
                for _ in range(n_sub_policies)
            ],
            space=space,
        )

    def to_dict(self) -> dict:
        """JSON-ready dict (``format``, ``version``, ``space``, ``sub_policies``)."""
        return {
            "format": FORMAT,
            "version": 1,
            "space": self.space.name,
            "sub_policies": [[c.to_dict() for c in sub] for sub in self.sub_policies],
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> Policy:
        """Inverse of :meth:`to_dict`; PolicyFormatError names ``source`` and the field."""
        if not isinstance(data, dict):
            raise PolicyFormatError(f"{source}: a policy must be a JSON object, got {type(data).__name__}")
        jsonio.check_header(data, FORMAT, source)
        space = jsonio.field(data, "space", str, source)
        subs = jsonio.field(data, "sub_policies", list, source)
        parsed = []
        for i, sub in enumerate(subs):
            if not isinstance(sub, list):
                raise PolicyFormatError(f"{source}: sub_policies[{i}] must be a list")
            row = []
            for j, item in enumerate(sub):
                where = f"{source}: sub_policies[{i}][{j}]"
                if not isinstance(item, dict):
                    raise PolicyFormatError(f"{where} must be an object with 'op' and 'bin'")
                unknown = set(item) - {"op", "bin", "prob"}
                if unknown:
                    raise PolicyFormatError(f"{where}: unknown field(s) {sorted(unknown)}")
                op = jsonio.field(item, "op", str, where)
                bin_ = jsonio.field(item, "bin", int, where)
                prob = jsonio.field(item, "prob", (int, float), where) if "prob" in item else 1.0
                row.append(OpChoice(op, bin_, prob))
            parsed.append(row)
        try:
            return cls(parsed, space=space)
        except ValueError as err:
            raise PolicyFormatError(f"{source}: {err}") from None

    def __eq__(self, other):
        return isinstance(other, Policy) and self.space == other.space and self.sub_policies == other.sub_policies

    __hash__ = None  # type: ignore[assignment]  # equal by value, mutable arrays inside: unhashable

    def __repr__(self):
        subs = "; ".join(
            " → ".join(f"{c.op}@{c.bin}" + (f"(p={c.prob:g})" if c.prob != 1 else "") for c in sub)
            for sub in self.sub_policies
        )
        return f"Policy[{self.space.name}]({subs})"
