"""A batch's random generator, made only when a NumPy draw needs it.

The loader seeds every batch afresh: ``numpy.random.default_rng([seed, shard, 1, epoch, step])``.
Making that Generator (its SeedSequence and PCG64) costs more than the compiled sampler's whole
draw when the caches are cold, as they are between a loader's batches. :class:`BatchSeed` holds
the entropy instead; the compiled sampler (:mod:`fastpolicy.sample_native`) seeds the same PCG64
from it itself and leaves its state here, and :meth:`BatchSeed.generator` makes the Generator —
continuing after those draws — only for a caller that draws more. Every draw is the one the
Generator would give.
"""

from __future__ import annotations

import operator

import numpy as np


class BatchSeed:
    """``numpy.random.default_rng(list(entropy))``, made when first needed.

    Args:
        entropy: non-negative integers (numpy's SeedSequence entropy).
    """

    def __init__(self, *entropy: int):
        words: list[int] = []
        for value in entropy:
            value = operator.index(value)
            if value < 0:
                raise ValueError(f"seed entropy must be non-negative integers, got {value}")
            words.append(value & 0xFFFFFFFF)  # numpy's coercion: 32-bit words, least significant first
            value >>= 32
            while value:
                words.append(value & 0xFFFFFFFF)
                value >>= 32
        self.entropy = entropy
        self.words = np.array(words, np.uint32)
        """uint32: the entropy as SeedSequence reads it (each integer's words; 0 is one word)."""
        self._generator: np.random.Generator | None = None
        self._state: tuple[int, int, int, int] | None = None

    @property
    def drawn(self) -> bool:
        """Whether the generator was made: draws then go through it (:meth:`generator`)."""
        return self._generator is not None

    @property
    def fresh(self) -> bool:
        """Whether nothing was drawn yet: a compiled draw may then seed the PCG64 itself."""
        return self._generator is None and self._state is None

    def advance(self, state: int, inc: int, has_uint32: int, uinteger: int) -> None:
        """Record the PCG64 state after draws made outside the generator (before it is made)."""
        if self._generator is not None:
            raise RuntimeError("the generator was made already: draw from it")
        self._state = (state, inc, has_uint32, uinteger)

    def generator(self) -> np.random.Generator:
        """The Generator, in the state after every draw made so far."""
        if self._generator is None:
            generator = np.random.default_rng(list(self.entropy))
            if self._state is not None:
                state, inc, has_uint32, uinteger = self._state
                generator.bit_generator.state = {
                    "bit_generator": "PCG64",
                    "state": {"state": state, "inc": inc},
                    "has_uint32": has_uint32,
                    "uinteger": uinteger,
                }
            self._generator = generator
        return self._generator

    def __repr__(self) -> str:
        return f"BatchSeed{self.entropy}"


def generator_of(rng: np.random.Generator | BatchSeed) -> np.random.Generator:
    """``rng`` itself, or a :class:`BatchSeed`'s generator."""
    return rng.generator() if isinstance(rng, BatchSeed) else rng


__all__ = ["BatchSeed", "generator_of"]
