"""The DALI policy stage: a pipeline, built once, that applies per-sample parameters it is fed.

:class:`DaliPolicyStage` ``.apply(images, params)`` feeds uint8 NHWC images and the
per-slot arrays of :func:`.pack.pack` through ``external_source`` and runs one iteration:
for every slot, DALI's ``auto_aug`` ``select`` splits the batch by op id
(conditional execution) and each part goes through its op's registered DALI
implementation (:mod:`.dali_ops`). New parameters every call, no rebuild.
"""

from __future__ import annotations

import numpy as np
from nvidia.dali import fn, pipeline_def
from nvidia.dali.auto_aug.core import select

from ..reference.geometry import FILL, check_fill
from ..registry import OPS
from . import dali_ops
from .pack import DALI_FIELDS, pack


def _fields(pairing: bool) -> tuple[str, ...]:
    return DALI_FIELDS if pairing else DALI_FIELDS[:-1]


def _slot_pipeline(slots: int, channels: int, size: tuple[int, int], device: str, pairing: bool, fill: int):
    # Without partners SamplePairing is never selected (feed() rejects it); identity keeps the graph valid.
    # select = op id + 1 (0: the slot is skipped; see fastpolicy.backends.pack)
    implementations = [dali_ops.identity] + [
        spec.backends["dali"] if pairing or spec.needs != "partner" else dali_ops.identity for spec in OPS.values()
    ]
    images = fn.external_source(name="images", device=device, layout="HWC")
    original = images
    for k in range(slots):
        inputs = {f: fn.external_source(name=f"{f}{k}") for f in _fields(pairing)}
        on_device = (lambda node: node.gpu()) if device == "gpu" else (lambda node: node)
        args = dali_ops.DaliSlotArgs(
            value32=on_device(inputs["value"]),
            matrix=inputs["matrix"],
            anchor=inputs["anchor"],
            shape=inputs["shape"],
            partner_image=fn.permute_batch(original, indices=inputs["partner"]) if pairing else None,
            channels=channels,
            size=size,
            fill=fill,
        )
        images = select(implementations, inputs["select"], images, args)
    return images


class DaliPolicyStage:
    """Applies :class:`~fastpolicy.params.PolicyParams` to uint8 NHWC batches with DALI.

    Args:
        max_batch: largest batch (M·N) it will be fed.
        height, width, channels: the image size every batch has (C = 1 or 3).
        slots: op slots per sample (K; 2 for AutoAugment-style sub-policies).
        device: ``"cpu"`` or ``"gpu"`` (images fed as CUDA arrays, e.g. torch or CuPy).
        device_id: CUDA device for ``"gpu"``; ignored on the CPU.
        num_threads: DALI CPU threads.
        pairing: build the SamplePairing partner lookup (one batch permutation per slot);
            a stage without it rejects parameters that use SamplePairing.
        fill: the geometric ops' fill level, 0..255 (AutoAugment's grey 128 by default).

    Attributes:
        builds: how many times the pipeline was built (1: parameters never rebuild it).
    """

    def __init__(
        self,
        max_batch: int,
        height: int,
        width: int,
        channels: int = 3,
        slots: int = 2,
        device: str = "cpu",
        device_id: int | None = None,
        num_threads: int = 2,
        pairing: bool = True,
        fill: int = FILL,
    ):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.max_batch, self.size, self.channels, self.slots = max_batch, (height, width), channels, slots
        self.device, self.pairing, self.fill = device, pairing, check_fill(fill)
        pipe = pipeline_def(_slot_pipeline, enable_conditionals=True)(
            slots,
            channels,
            self.size,
            device,
            pairing,
            self.fill,
            batch_size=max_batch,
            num_threads=num_threads,
            device_id=(device_id or 0) if device == "gpu" else None,
            prefetch_queue_depth=1,
        )
        pipe.build()
        self._pipe = pipe
        self.builds = 1

    def feed(self, images, params) -> None:
        """Queue one batch: ``images`` uint8 [B, H, W, C] (NumPy, or CUDA array on the GPU);
        parameters with fewer op slots than the stage are padded with skipped slots."""
        batch = params.n
        if tuple(images.shape) != (batch, *self.size, self.channels):
            raise ValueError(
                f"expected images of shape {(batch, *self.size, self.channels)}, got {tuple(images.shape)}"
            )
        if not 0 < batch <= self.max_batch:
            raise ValueError(f"batch of {batch} images; this stage takes 1 to {self.max_batch}")
        if params.k > self.slots:
            raise ValueError(f"params have {params.k} op slots; this stage applies {self.slots}")
        params = params.pad_slots(self.slots) if params.k < self.slots else params
        if not self.pairing and np.any(params.op == OPS["SamplePairing"].id):
            raise ValueError("params use SamplePairing but the stage was built with pairing=False")
        self._pipe.feed_input("images", images)
        for k, arrays in enumerate(pack(params, *self.size, "dali").views()):
            for f in _fields(self.pairing):
                self._pipe.feed_input(f"{f}{k}", arrays[f])

    def run(self):
        """Run the fed batch; returns DALI's output TensorList (CPU or GPU)."""
        return self._pipe.run()[0]

    def apply(self, images, params) -> np.ndarray:
        """``images`` with ``params`` applied: uint8 NHWC NumPy array (copied to the host)."""
        self.feed(images, params)
        out = self.run()
        if self.device == "gpu":
            out = out.as_cpu()
        return np.array(out.as_tensor())
