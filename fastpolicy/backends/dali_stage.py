"""The ``"dali"`` backend: a DALI pipeline, built once, that applies per-sample parameters it is fed.

:class:`DaliPolicyStage` ``.apply(images, params)`` feeds uint8 NHWC images and the
per-slot arrays of :func:`.pack.pack` (:data:`DALI_SLOTS`) through
``external_source`` and runs one iteration: for every slot, DALI's ``auto_aug``
``select`` splits the batch by op id (conditional execution) and each part goes through
its op's registered DALI implementation (:mod:`.dali_ops`). New parameters every call, no
rebuild. :class:`DaliStage` puts it behind the stage protocol. DALI is imported only when
a stage is built, so this module (and its registration) loads without DALI.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..reference import blur, geometry
from ..reference.geometry import FILL, check_fill
from ..registry import OP_NAMES, OPS, on_change
from .pack import SlotFields, affine_groups, pack
from .protocol import PolicyStage, any_op, finish, gather_samples
from .registration import importable, register_stage

DALI_FIELDS = ("select", "value", "matrix", "anchor", "shape", "blur_taps", "blur_weights", "partner")
"""Fields of a DALI slot: ``select`` = op id + 1 (0: skipped), float32 value, float32
[N, 2, 3] output→input matrix, Cutout anchor and shape as float32 [N, 2], a filter op's box
passes (float32 [N, 2, :data:`BOX_TAPS`] masks of the box's inside and its two far taps,
int32 [N, 2] weights ww, fw: :func:`~fastpolicy.reference.blur.box_weights_of`), partner."""

BOX_RADIUS = 4
"""Largest whole box radius r the ``dali`` stage's GaussianBlur takes (deviations below
``deviation_below(4)`` = √30 ≈ 5.48 pixels; timm's reach 2): its filters are fixed at 2·r + 3
taps when the pipeline is built."""

BOX_TAPS = 2 * BOX_RADIUS + 3

_IDENTITY = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)


@functools.lru_cache(maxsize=8192)
def _float_matrix(op_id: int, value: float, height: int, width: int) -> np.ndarray:
    """DALI form of a geometric op: float32[2, 3] output→input matrix (pixel centres at +0.5)."""
    reference = OPS[OP_NAMES[op_id]].reference
    matrix = reference.matrix(value, height, width)  # type: ignore[attr-defined]
    if geometry.is_translation(matrix) and (matrix[0] != 1 or matrix[4] != 1):
        raise ValueError(
            f"op {OP_NAMES[op_id]!r} at value {value:g} scales the image: PIL's scale engine steps in float64 "
            "sums that DALI's float32 warp cannot reproduce, so the 'dali' stage cannot run it; the 'native', "
            "'reference' and 'pil' stages can"
        )
    exact = geometry.float_matrix(matrix, height, width)
    return np.reshape(exact, (2, 3)).astype(np.float32)


def dali_slot(
    op: np.ndarray, value: np.ndarray, box: np.ndarray, partner: np.ndarray, height: int, width: int
) -> dict[str, np.ndarray]:
    """One slot's :data:`DALI_FIELDS` (arguments as :attr:`.pack.SlotFields.build`)."""
    n = len(op)
    matrix = np.broadcast_to(_IDENTITY, (n, 2, 3)).copy()
    for op_id, v, members in affine_groups(op, value):
        matrix[members] = _float_matrix(op_id, v, height, width)
    masks, weights = _box_fields(op, value)
    return {
        "select": (op + 1).astype(np.int32),
        "value": value.astype(np.float32),
        "matrix": matrix,
        "anchor": box[:, :2].astype(np.float32),
        "shape": (box[:, 2:] - box[:, :2]).astype(np.float32),
        "blur_taps": masks,
        "blur_weights": weights,
        "partner": partner,
    }


def _box_fields(op: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A filter op's per-sample box masks and weights (see :data:`DALI_FIELDS`); zeros elsewhere.
    ValueError naming the value where its box is wider than :data:`BOX_RADIUS`."""
    n = len(op)
    masks = np.zeros((n, 2, BOX_TAPS), np.float32)
    weights = np.zeros((n, 2), np.int32)
    samples = np.flatnonzero(_FILTERS[op + 1]) if _FILTERS.any() else ()
    if not len(samples):
        return masks, weights
    boxes = blur.box_weights_of(value[samples])
    wide = boxes[:, 0] > BOX_RADIUS
    if wide.any():
        first = samples[wide][0]
        raise ValueError(
            f"op {OP_NAMES[int(op[first])]!r} at value {float(value[first]):g}: its box radius "
            f"{int(boxes[wide][0, 0])} exceeds the 'dali' stage's {BOX_RADIUS} (deviations below "
            f"{blur.deviation_below(BOX_RADIUS):.2f} pixels); the 'native', 'emulated', 'cupy', 'reference' and "
            "'pil' stages take any"
        )
    centre = BOX_RADIUS + 1  # the filters' middle tap, DALI's default anchor
    taps = np.arange(BOX_TAPS) - centre
    r = boxes[:, :1]
    masks[samples, 0] = np.abs(taps) <= r
    masks[samples, 1] = np.abs(taps) == r + 1
    weights[samples] = boxes[:, 1:]
    return masks, weights


_FILTERS = np.zeros(1, bool)
"""bool [ops + 1]: whether op id − 1 is a filter op (index 0: skipped slots), kept with the registry."""


@on_change
def _read_registry() -> None:
    global _FILTERS
    _FILTERS = np.array([False] + [OPS[name].kind == "filter" for name in OP_NAMES])


_read_registry()


DALI_SLOTS = SlotFields(DALI_FIELDS, dali_slot)
"""DALI's slot fields (no row tables: the stage is fed the samples in order)."""


def _fields(pairing: bool) -> tuple[str, ...]:
    return DALI_FIELDS if pairing else DALI_FIELDS[:-1]


def _slot_pipeline(slots: int, channels: int, size: tuple[int, int], device: str, pairing: bool, fill: int):
    from nvidia.dali import fn
    from nvidia.dali.auto_aug.core import select

    from . import dali_ops  # registers the DALI implementation of every op

    # Without partners SamplePairing is never selected (feed() rejects it); identity keeps the graph valid.
    # select = op id + 1 (0: the slot is skipped; see fastpolicy.backends.pack)
    # ops without a DALI form (registered table or reference ops) never reach it: feed() refuses them
    implementations = [dali_ops.identity] + [
        (dali_ops.implementation(spec) or dali_ops.identity)
        if pairing or spec.needs != "partner"
        else dali_ops.identity
        for spec in OPS.values()
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
            blur_taps=on_device(inputs["blur_taps"]),
            blur_weights=on_device(inputs["blur_weights"]),
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
        from nvidia.dali import pipeline_def

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
        from . import dali_ops

        self._ops = tuple(OP_NAMES)  # the ops the pipeline was built with (registered ones included)
        self._missing = np.array([dali_ops.implementation(OPS[name]) is None for name in self._ops] + [False])

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
        if params.op.max(initial=-1) >= len(self._ops):
            late = OP_NAMES[int(params.op.max())]
            raise ValueError(f"op {late!r} was registered after this DALI stage was built: build a new stage")
        missing = self._missing[params.op]  # index -1 (no op): the trailing False
        if missing.any():
            name = self._ops[int(params.op[missing][0])]
            raise ValueError(
                f"op {name!r} has no DALI implementation (a registered table or reference op): the 'dali' "
                "stage cannot run it; the 'native', 'reference' and 'pil' stages can"
            )
        self._pipe.feed_input("images", images)
        for k, arrays in enumerate(pack(params, *self.size, DALI_SLOTS).views()):
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


class DaliStage(PolicyStage):
    """:class:`DaliPolicyStage` behind the stage protocol, then :func:`~.protocol.finish`;
    on a GPU the images are fed and read back as device memory (no host round trip).
    Built for one H×W×C: other sizes are refused.

    Args:
        max_batch, height, width, channels, slots, num_threads, fill: as :class:`DaliPolicyStage`.
        device: ``"cpu"`` or ``"gpu"`` (torch's current CUDA device).
    """

    name = "dali"

    def __init__(
        self,
        max_batch: int,
        height: int,
        width: int,
        channels: int,
        slots: int,
        device: str,
        num_threads: int,
        fill: int,
    ):
        self.device = device
        self._stage = DaliPolicyStage(
            max_batch,
            height,
            width,
            channels=channels,
            slots=slots,
            device=device,
            device_id=torch.cuda.current_device() if device == "gpu" else None,
            num_threads=num_threads,
            fill=fill,
        )
        self.builds = self._stage.builds

    def apply(self, images, params, out):
        images = gather_samples(images, params)
        if any_op(params):
            from nvidia.dali.plugin.pytorch import feed_ndarray

            self._stage.feed(images if images.is_cuda else images.numpy(), params)
            result = self._stage.run().as_tensor()
            images = torch.empty(result.shape(), dtype=torch.uint8, device=images.device)
            feed_ndarray(result, images, cuda_stream=torch.cuda.current_stream() if images.is_cuda else None)
        return finish(images, out)


def _build(device: str, *, max_batch, height, width, channels, slots, fill, num_threads) -> DaliStage:
    return DaliStage(max_batch, height, width, channels, slots, device, num_threads, fill)


register_stage(
    "dali",
    devices=("cpu", "gpu"),
    available=lambda: importable("nvidia.dali"),
    build=_build,
    priority=20,
    label="fastpolicy (DALI operators)",
    any_size=False,
    needs="NVIDIA DALI (the nvidia-dali package)",
    runs=lambda spec: spec.kind == "affine" or "dali" in spec.backends,
)
