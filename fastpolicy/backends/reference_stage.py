"""The ``"numpy"`` backend: the NumPy reference (:func:`fastpolicy.reference.apply_batch`,
the specification) behind the stage protocol. Slow; for tests, checking and the CPU hosts
without a C++ compiler."""

from __future__ import annotations

import torch

from ..reference.geometry import FILL, check_fill
from .protocol import PolicyStage, any_op, finish, gather_samples
from .registration import register_stage


class ReferenceStage(PolicyStage):
    """The reference on the host, then :func:`~.protocol.finish`; CUDA images are copied to
    the host and the result back to their device.

    Args:
        fill: the geometric ops' fill level, 0..255.
    """

    name = "numpy"

    def __init__(self, fill: int = FILL):
        self.fill = check_fill(fill)

    def apply(self, images, params, out):
        from .. import reference

        images = gather_samples(images, params)
        if any_op(params):
            augmented = reference.apply_batch(images.cpu().numpy(), params, fill=self.fill)
            images = torch.from_numpy(augmented).to(images.device)
        return finish(images, out)


register_stage(
    "numpy",
    devices=("cpu", "gpu"),
    default_on=("cpu",),  # on a GPU every batch would go through the host
    available=lambda: True,
    build=lambda device, *, fill, **_: ReferenceStage(fill),
    priority=10,
    label="fastpolicy (NumPy reference)",
    any_size=True,
)
