"""A per-epoch policy schedule: the M policies each epoch trained with (Adversarial AutoAugment's output)."""

from __future__ import annotations

import operator

from . import jsonio
from .jsonio import PolicyFormatError
from .policy import Policy

FORMAT = "fastpolicy.schedule"


class PolicySchedule(jsonio.JsonFile):
    """Epoch → list of policies. ``epochs[e]`` holds the policies used in epoch ``e``; a run that
    trains past the schedule's last epoch keeps that epoch's policies (``schedule[e]`` for any
    ``e`` ≥ ``len(schedule)`` is the last epoch's)."""

    def __init__(self, epochs=()) -> None:
        self.epochs: list[list[Policy]] = []
        for policies in epochs:
            self.append(policies)

    def append(self, policies) -> None:
        """Record the policies of the next epoch (a non-empty list of :class:`Policy`)."""
        policies = list(policies)
        if not policies or not all(isinstance(p, Policy) for p in policies):
            raise ValueError(f"epoch {len(self.epochs)}: expected a non-empty list of Policy")
        self.epochs.append(policies)

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        """``PolicySchedule(3 epochs × 8 policies)``."""
        sizes = sorted({len(policies) for policies in self.epochs})
        per = "×".join(str(n) for n in sizes) if sizes else "0"
        return f"PolicySchedule({len(self.epochs)} epochs × {per} policies)"

    def __getitem__(self, epoch: int) -> list[Policy]:
        """The policies of ``epoch``: past the end, the last epoch's; a negative index counts
        from the end, as in a list. IndexError for an empty schedule."""
        if not self.epochs:
            raise IndexError("the schedule holds no epochs")
        if isinstance(epoch, bool):
            raise TypeError("an epoch is an integer, not a bool")
        epoch = operator.index(epoch)  # NumPy integers too
        return self.epochs[-1] if epoch >= len(self.epochs) else self.epochs[epoch]

    def __iter__(self):
        return iter(self.epochs)

    def for_copies(self, epoch: int, M: int) -> list[Policy]:
        """The M copies' policies in ``epoch`` (past the end: the last epoch's): copy m replays
        policy m mod K of the epoch's K. ValueError unless M is a multiple of K (otherwise some
        policies would be dropped or favoured)."""
        policies = self[epoch]
        if M % len(policies):
            raise ValueError(
                f"M {M} with a schedule whose epochs hold {len(policies)} policies each: copy m replays policy "
                f"m mod {len(policies)}, so M must be a multiple of {len(policies)} (M {M} would "
                f"{'drop' if len(policies) > M else 'favour'} some of them)"
            )
        return [policies[m % len(policies)] for m in range(M)]

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": 1,
            "epochs": [{"epoch": e, "policies": [p.to_dict() for p in ps]} for e, ps in enumerate(self.epochs)],
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> PolicySchedule:
        if not isinstance(data, dict):
            raise PolicyFormatError(f"{source}: a schedule must be a JSON object")
        jsonio.check_header(data, FORMAT, source)
        schedule = cls()
        entries = jsonio.field(data, "epochs", list, source)
        if not entries:
            raise PolicyFormatError(f"{source}: the schedule holds no epochs")
        for i, entry in enumerate(entries):
            where = f"{source}: epochs[{i}]"
            if not isinstance(entry, dict):
                raise PolicyFormatError(f"{where} must be an object")
            if jsonio.field(entry, "epoch", int, where) != i:
                raise PolicyFormatError(f"{where}: epoch number {entry['epoch']!r}, expected {i}")
            policies = jsonio.field(entry, "policies", list, where)
            if not policies:
                raise PolicyFormatError(f"{where}: no policies")
            schedule.append([Policy.from_dict(p, f"{where}.policies[{j}]") for j, p in enumerate(policies)])
        return schedule

    def __eq__(self, other):
        return isinstance(other, PolicySchedule) and self.epochs == other.epochs

    __hash__ = None  # type: ignore[assignment]  # equal by value, mutable arrays inside: unhashable
