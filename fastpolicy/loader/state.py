"""A loader's resume state: where it is, which policies it samples, and DALI's checkpoint.

:class:`LoaderState` is what :meth:`~fastpolicy.loader.PolicyDALILoader.state_dict`
returns as a plain dict (JSON-able: the checkpoint is base64 text), and what
:meth:`~fastpolicy.loader.PolicyDALILoader.load_state_dict` checks against the loader
it restores before anything changes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass(frozen=True)
class LoaderState:
    """Everything needed to continue with the same batches.

    Attributes:
        epoch, step: the position (the next batch to yield).
        version: the policy version; policies: the samplers as dicts (None: no policy).
        source: the source's DALI checkpoint (taken before a batch made ahead, so a
            resumed loader makes that batch again).
        shard: ``(shard_id, num_shards)``; batch_size, M: the loader's, checked on restore.
    """

    epoch: int
    step: int
    version: int
    policies: list[dict] | None
    source: bytes
    shard: tuple[int, int]
    batch_size: int
    M: int

    def to_dict(self) -> dict:
        """The state as a plain dict (keys as the attributes; ``source`` base64 text)."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "version": self.version,
            "policies": self.policies,
            "source": base64.b64encode(self.source).decode("ascii"),
            "shard": list(self.shard),
            "batch_size": self.batch_size,
            "M": self.M,
        }

    @classmethod
    def from_dict(cls, state: dict) -> LoaderState:
        """The state of :meth:`to_dict`'s dict."""
        return cls(
            epoch=state["epoch"],
            step=state["step"],
            version=state["version"],
            policies=state["policies"],
            source=base64.b64decode(state["source"]),
            shard=(state["shard"][0], state["shard"][1]),
            batch_size=state["batch_size"],
            M=state["M"],
        )

    def check(self, batch_size: int, M: int, shard: tuple[int, int]) -> None:
        """Raise ValueError naming the setting where this state and a loader differ."""
        for key, mine in (("batch_size", batch_size), ("M", M)):
            if getattr(self, key) != mine:
                raise ValueError(f"state has {key}={getattr(self, key)}, this loader {mine}")
        if list(self.shard) != list(shard):
            raise ValueError(f"state is of shard {list(self.shard)}, this loader {list(shard)}")
