"""PolicyDALILoader: the M×N enlarged batch, with per-sample policies that change every step.

Per batch:

1. the *source* (:mod:`.source`, a DALI pipeline built once) reads, decodes each image
   once and makes M copies with their own baseline augmentation, stacked by DALI's own
   threads into **one** uint8 buffer ``[N, M, H, W, C]`` (it prefetches, as DALI loaders
   do); on the CPU the stage reads it in place, on a GPU after one device copy;
2. the M policies are sampled in one vectorized pass
   (:func:`~fastpolicy.sampling.sample_policies`) from a generator seeded by
   ``(seed, shard, epoch, step)``, so a batch's parameters depend only on its position
   and the policies;
3. the *policy stage* (:func:`~fastpolicy.backends.stage.make_stage`, the one stage
   protocol) applies them and writes the output dtype, layout and normalization the
   training step consumes: the fused CUDA kernels on a GPU, the native CPU stage, or DALI.

With ``prefetch=1`` (the default on a GPU) the next batch's steps 1–3 run on a
background thread — on a side CUDA stream on a GPU — while the current batch trains.

**When** :meth:`PolicyDALILoader.set_policies` **takes effect**: at the next batch the
iterator yields, with or without prefetching. A batch prepared ahead with older policies
is re-augmented from its kept source images with parameters drawn from the same per-batch
seed, so the prefetching loader yields exactly the synchronous loader's batches; a new
epoch's first batch is never prepared before the epoch starts. Every :class:`Batch`
reports the policy version it was really augmented with (``batch.version``).

Batches are policy-major: row ``m·N + n`` is copy ``m`` of image ``n`` and carries
policy index ``m``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..backends.stage import OutputSpec, make_stage, resolve_backend
from ..data.files import (
    DEFAULT_MAX_PIXELS,
    BadImageError,
    ImageList,
    check_files,
    describe_scan,
    read_file_list,
    scan_folder,
)
from ..data.stats import channel_stats
from ..device import resolve_device
from ..log import get as get_logger
from ..params import NO_OP, PolicyParams
from ..reference.geometry import FILL, check_fill
from ..registry import OPS
from ..sampling import sample_policies, share_equal
from .source import BASELINES, ArraySource, build_source

log = get_logger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Batch(tuple):
    """``(images, labels, policy_ids)``, unpackable as a 3-tuple, with what produced it.

    Attributes:
        images: torch (B, C, H, W) of the loader's ``output`` type (normalized floats, or
            uint8 pixels) and ``layout`` (contiguous, or ``torch.channels_last``).
        labels: torch int64 (B,).
        policy_ids: torch int64 (B,), the policy index (copy m) of every row.
        version: the policy version its parameters were sampled from.
        params: the :class:`~fastpolicy.params.PolicyParams` applied (None: no policy).
        indices: int64[N], dataset index of each original image (files: index in ``loader.files``).
        epoch, step: epoch number and batch number within it.
    """

    def __new__(cls, images, labels, policy_ids, **info):
        batch = super().__new__(cls, (images, labels, policy_ids))
        batch.__dict__.update(info)
        return batch

    images = property(lambda self: self[0])
    labels = property(lambda self: self[1])
    policy_ids = property(lambda self: self[2])


OUTPUTS = ("float", "float32", "float16", "bfloat16", "uint8")
"""Output element types of :class:`PolicyDALILoader` (``"float"``: float32)."""


def is_sampler(obj) -> bool:
    """True for a policy model the loader samples from (``space``, ``n_ops``, ``choose``)."""
    return all(hasattr(obj, name) for name in ("space", "n_ops", "choose"))


@dataclass
class _Prepared:
    """One batch made ahead: the source buffer (kept to re-augment), the augmented images,
    labels [n], dataset indices, parameters and their version, the event after which the
    batch is ready on a GPU, and the source's checkpoint before its run (ahead only)."""

    source: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor
    indices: np.ndarray
    n: int
    params: PolicyParams | None
    version: int
    ready: torch.cuda.Event | None
    checkpoint: bytes | None


class _Timings:
    """Host seconds per part of the loader, summed since the last :meth:`reset`: ``source``
    (DALI's run), ``assemble`` (one buffer, labels, indices), ``sample``, ``stage`` (the
    policy stage's call: packing, uploads and launches, and on the CPU its compute),
    ``reaugment``, ``batch``; ``count`` batches."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.seconds: dict[str, float] = {}

    def add(self, part: str, seconds: float) -> None:
        with self.lock:
            self.seconds[part] = self.seconds.get(part, 0.0) + seconds


def _image_list(data, verify: str, on_bad: str, workers: int, max_pixels: int | None) -> ImageList:
    if isinstance(data, ImageList):
        images = data
    elif os.path.isdir(data):
        images = scan_folder(data, on_bad=on_bad)
    elif os.path.isfile(data):
        images = read_file_list(data)
    else:
        raise FileNotFoundError(f"{data!r} is neither a dataset folder nor a file list")
    images = check_files(images, verify=verify, on_bad=on_bad, workers=workers, max_pixels=max_pixels)
    left_out = describe_scan(images)
    if left_out:
        log.warning(f"fastpolicy: {data if isinstance(data, str) else 'image list'}: {left_out}")
    return images


class PolicyDALILoader:
    """The enlarged-batch loader. Iterate it for one epoch of :class:`Batch` es.

    Args:
        data: an ImageNet-layout folder (``root/<class>/<image>``), a file list
            (``path label`` lines), or an :class:`~fastpolicy.data.files.ImageList`.
            In-memory arrays: :meth:`from_arrays`.
        batch_size: N, distinct images per batch; a batch holds M·N rows.
        M: copies of every image (one policy each).
        image_size: S, the side of the square crops (files); arrays keep their size.
        device: ``"gpu"``, ``"cpu"`` or None (GPU if torch sees one). Decoding and the
            policy run there; tensors come out there.
        shard_id, num_shards: this process's part of the data (one epoch = the dataset
            once over all shards).
        seed: seeds shuffling, baseline randomness and policy sampling.
        backend: how policies are applied: ``"cupy"`` (the fused CUDA kernels; GPU only),
            ``"native"`` (the same kernel sources as a fast CPU stage: g++ and OpenMP at first
            use, one block per sample; 2.6× DALI's CPU operators at 224² on 2 cores),
            ``"dali"`` (DALI operators), ``"emulated"`` (the CUDA kernels run on the CPU by
            the host emulator; slow, for checking the kernel path without a GPU) or
            ``"numpy"`` (the reference; slow, for checking). None: ``"cupy"`` on a GPU when
            CuPy is installed, else ``"dali"`` on a GPU; ``"native"`` on the CPU when a C++
            compiler is there (``$CXX`` or g++), else ``"dali"``.
        baseline: see :data:`~fastpolicy.loader.source.BASELINES`; default ``"imagenet"``
            for files, ``"pad_crop"`` for arrays.
        shuffle: reshuffle every epoch.
        drop_last: drop the shard's last partial batch (else yield it, smaller).
        output: the batch's element type: ``"float"`` or ``"float32"``, ``"float16"``,
            ``"bfloat16"`` (normalized), or ``"uint8"`` (pixels as they are).
        layout: ``"nchw"`` (contiguous) or ``"channels_last"`` (``torch.channels_last``
            memory, what a channels-last model consumes without a copy); the stage writes it.
        mean, std: per-channel normalization in [0, 1] units (default ImageNet's).
        policies: initial policies (see :meth:`set_policies`); default none (baseline only).
        slots: op slots per sample the policy stage applies (2 for AutoAugment sub-policies).
        fill: the 0..255 level geometric ops fill with (AutoAugment's grey 128 by default;
            0 suits dark backgrounds such as Fashion-MNIST's).
        magnitude_scale: every sampled value is moved to ``identity + scale · (value −
            identity)`` of its op (1: the search space's full range; < 1 a moderate range,
            e.g. for small images). The scaled values are what ``Batch.params`` reports.
        cutout: side in pixels of a Cutout square applied to every copy *after* its
            policy (AutoAugment's CIFAR pipeline: 16), with or without policies; 0: none.
            It is registry op Cutout (grey 128, about CIFAR's mean, where the original
            zeroes the normalized image, i.e. fills with the mean) in an extra op slot,
            so ``Batch.params`` shows it.
        verify, on_bad, max_pixels: file checks before reading (see
            :func:`~fastpolicy.data.files.check_files`; default: headers, dimensions within PIL's
            ``MAX_IMAGE_PIXELS``, raise on a bad file).
        num_threads: DALI CPU threads per pipeline.
        prefetch: 1: prepare the next batch (source output, sampling, upload, policy stage)
            on a background thread, on a side CUDA stream on a GPU, while the current one
            trains; 0: on demand. Both yield the same batches (see the module docstring).
            None: 1 on a GPU, 0 on the CPU.
    """

    def __init__(
        self,
        data,
        batch_size: int,
        M: int = 8,
        image_size: int = 224,
        device: str | None = None,
        shard_id: int = 0,
        num_shards: int = 1,
        seed: int = 0,
        *,
        backend: str | None = None,
        baseline: str | None = None,
        shuffle: bool = True,
        drop_last: bool = True,
        output: str = "float",
        layout: str = "nchw",
        mean=None,
        std=None,
        policies=None,
        slots: int = 2,
        fill: int = FILL,
        magnitude_scale: float = 1.0,
        cutout: int = 0,
        verify: str = "header",
        on_bad: str = "raise",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        num_threads: int = 2,
        prefetch: int | None = None,
        _arrays: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        if batch_size < 1 or M < 1:
            raise ValueError(f"batch_size and M must be positive, got {batch_size} and {M}")
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id {shard_id} outside [0, {num_shards})")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if layout not in ("nchw", "channels_last"):
            raise ValueError(f"layout must be 'nchw' or 'channels_last', got {layout!r}")
        if prefetch not in (None, 0, 1):
            raise ValueError(f"prefetch must be 0, 1 or None (auto), got {prefetch!r}")
        if not 0 < magnitude_scale <= 1:
            raise ValueError(f"magnitude_scale must be in (0, 1], got {magnitude_scale!r}")
        if isinstance(cutout, bool) or not isinstance(cutout, (int, np.integer)) or cutout < 0:
            raise ValueError(f"cutout must be a side in pixels ≥ 0, got {cutout!r}")
        self.fill, self.magnitude_scale, self.cutout = check_fill(fill), float(magnitude_scale), int(cutout)
        device = resolve_device(device)
        backend = resolve_backend(backend, device)
        self.batch_size, self.M, self.seed, self.slots = batch_size, M, seed, slots
        self.shard_id, self.num_shards, self.shuffle, self.drop_last = shard_id, num_shards, shuffle, drop_last
        self.device, self.backend, self.output, self.num_threads = device, backend, output, num_threads
        self.layout = layout
        self.prefetch = (1 if device == "gpu" else 0) if prefetch is None else prefetch
        self.baseline = baseline or ("pad_crop" if _arrays is not None else "imagenet")
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; choose from {BASELINES}")
        if _arrays is None and self.baseline in ("pad_crop", "none"):  # checked before scanning files
            raise ValueError(
                f"baseline={self.baseline!r} is for in-memory arrays of one size; files use 'imagenet' or 'center'"
            )
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self.images_list: ImageList | None = None
        if _arrays is not None:
            self._images, self._labels = _arrays
            n = len(self._images)
            self.size = self._images.shape[1:3]
            self.channels = self._images.shape[3]
        else:
            self.images_list = _image_list(data, verify, on_bad, max(2, num_threads), max_pixels)
            n = len(self.images_list)
            self.size, self.channels = (image_size, image_size), 3
        self.shard_size = n * (shard_id + 1) // num_shards - n * shard_id // num_shards
        if self.shard_size < (batch_size if drop_last else 1):
            raise ValueError(
                f"shard {shard_id} of {num_shards} holds {self.shard_size} images, fewer than one batch of {batch_size}"
            )
        self._reader_batches = -(-self.shard_size // batch_size)
        self._out = self._output_spec(mean, std)
        self.builds = 0
        self.epoch, self.step = 0, 0
        self._samplers: tuple = (None, 0)  # (policies, version), swapped whole (read by the prefetch thread)
        self._source = self._build_source()
        self._stage = None
        self._pending: Future | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._side_stream: torch.cuda.Stream | None = None
        self.timings = _Timings()
        if policies is not None:
            self.set_policies(policies)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray, batch_size: int, M: int = 8, **kwargs):
        """A loader over in-memory images: uint8 (N, H, W) or (N, H, W, C), C = 1 or 3; labels (N,).

        Default baseline ``"pad_crop"`` (pad 4, random crop, flip); default normalization
        the arrays' own per-channel mean and std.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[3] not in (1, 3):
            raise ValueError(f"images must be (N, H, W) or (N, H, W, C) with C = 1 or 3, got {images.shape}")
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
            raise ValueError("labels must be non-negative integers")
        if kwargs.get("mean") is None and kwargs.get("output", "float") == "float":
            kwargs["mean"], kwargs["std"] = channel_stats(images[:: max(1, len(images) // 10000)])
        return cls(None, batch_size, M, image_size=images.shape[1], _arrays=(images, labels), **kwargs)

    def _output_spec(self, mean, std) -> OutputSpec:
        mean = IMAGENET_MEAN if mean is None else tuple(mean)
        std = IMAGENET_STD if std is None else tuple(std)
        if self.channels == 1 and len(mean) == 3:
            mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
        if len(mean) != self.channels or len(std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values, got {mean} and {std}")
        dtype = "float32" if self.output == "float" else self.output
        return OutputSpec(dtype, self.layout, *((mean, std) if dtype != "uint8" else (None, None)))

    def _build_source(self, checkpoint=None, position: int = 0):
        graph = dict(copies=self.M, kind=self.baseline, size=self.size[0])
        if self.images_list is not None:
            graph["reader"] = dict(
                files=self.images_list.files,
                labels=[int(v) for v in self.images_list.labels],
                shard_id=self.shard_id,
                num_shards=self.num_shards,
                shuffle_after_epoch=self.shuffle,
                seed=self.seed,
                stick_to_shard=False,
            )
            graph["arrays"] = None
            self._file_index = {path: i for i, path in enumerate(self.images_list.files)}
        else:
            assert self._images is not None and self._labels is not None
            graph["reader"] = None
            graph["arrays"] = ArraySource(
                self._images,
                self._labels,
                self.batch_size,
                self.shard_id,
                self.num_shards,
                self.shuffle,
                self.seed,
                position,
            )
        pipe = build_source(
            batch_size=self.batch_size,
            num_threads=self.num_threads,
            device=self.device,
            device_id=torch.cuda.current_device() if self.device == "gpu" else None,
            seed=self.seed * 1009 + self.shard_id + 1,
            checkpoint=checkpoint,
            **graph,
        )
        self.builds += 1
        return pipe

    @property
    def output_spec(self) -> OutputSpec:
        """What the stage writes: dtype, layout and the normalization's mean and std."""
        return self._out

    def _policy_stage(self):
        if self._stage is None:
            self._stage = make_stage(
                self.backend,
                self.device,
                max_batch=self.M * self.batch_size,
                height=self.size[0],
                width=self.size[1],
                channels=self.channels,
                slots=self.slots + (1 if self.cutout else 0),
                fill=self.fill,
                num_threads=self.num_threads,
            )
            self.builds += getattr(self._stage, "builds", 0)
        return self._stage

    # -- policies ------------------------------------------------------------------------

    def set_policies(self, policies) -> int:
        """Use ``policies`` from the next batch the iterator yields on; returns the new
        policy version (see the module docstring for prefetching).

        ``policies``: a list of M samplers (copy m uses sampler m), or one sampler for all
        copies, or a standard policy's name (``"autoaugment"``, ``"randaugment"``, …) or a
        policy file's path (see :func:`fastpolicy.policies.resolve`), or None (baseline
        augmentation only). A sampler is a
        :class:`~fastpolicy.policy.Policy`, an :class:`~fastpolicy.distribution.AWSDistribution`
        or a standard policy of :mod:`fastpolicy.policies`. No pipeline is rebuilt.
        """
        if isinstance(policies, (str, os.PathLike)):
            from ..policies import resolve

            policies = resolve(os.fspath(policies))
            if not is_sampler(policies):
                raise ValueError(
                    "a policy schedule holds one set of policies per epoch: pass "
                    "schedule[epoch] to set_policies at each epoch's start"
                )
        if policies is None:
            samplers = None
        elif is_sampler(policies):
            samplers = [policies] * self.M
        else:
            samplers = list(policies)
            if len(samplers) != self.M:
                raise ValueError(f"got {len(samplers)} policies for M={self.M} copies")
            for i, p in enumerate(samplers):
                if not is_sampler(p):
                    raise TypeError(
                        f"policies[{i}] is a {type(p).__name__}, not a Policy, AWSDistribution or standard policy"
                    )
        if samplers is not None:
            k = max(s.n_ops for s in samplers)
            if k > self.slots:
                raise ValueError(f"policies apply {k} ops per sample; the loader was built with slots={self.slots}")
        self._samplers = (None if samplers is None else share_equal(samplers), self._samplers[1] + 1)
        return self.version

    @property
    def version(self) -> int:
        """The current policy version (bumped by every :meth:`set_policies`)."""
        return self._samplers[1]

    @property
    def policies(self):
        """The policy per copy (list of M) or None."""
        return self._samplers[0]

    def _sample(self, n: int, epoch: int, step: int) -> tuple[PolicyParams | None, int]:
        """The parameters of batch ``step`` of ``epoch`` with ``n`` distinct images under the
        current policies, and their version."""
        samplers, version = self._samplers
        rng = np.random.default_rng([self.seed, self.shard_id, 1, epoch, step])
        if samplers is None:
            params = None
        else:
            params = sample_policies(samplers, n, rng, version=version, slots=self.slots)
            params = params if self.magnitude_scale == 1 else params.scaled(self.magnitude_scale)
        return (params if not self.cutout else self._with_cutout(params, n, rng, version)), version

    def _with_cutout(self, params: PolicyParams | None, n: int, rng: np.random.Generator, version: int) -> PolicyParams:
        """``params`` (None: no policy) with one more slot: Cutout of :attr:`cutout` pixels on every row."""
        rows = self.M * n
        if params is None:
            params = PolicyParams(
                op=np.full((rows, self.slots), NO_OP),
                bin=np.full((rows, self.slots), -1),
                sign=np.ones((rows, self.slots)),
                value=np.zeros((rows, self.slots)),
                center=np.zeros((rows, self.slots, 2)),
                partner=np.zeros((rows, self.slots), dtype=np.int64),
                policy=np.repeat(np.arange(self.M), n),
                version=version,
            )
        arrays = params.arrays()
        extra = {"op": OPS["Cutout"].id, "bin": -1, "sign": 1, "value": self.cutout / min(self.size), "partner": 0}
        for name, value in extra.items():
            arrays[name] = np.concatenate([arrays[name], np.full((rows, 1), value, arrays[name].dtype)], axis=1)
        arrays["center"] = np.concatenate([arrays["center"], rng.random((rows, 1, 2))], axis=1)
        return PolicyParams(**arrays, version=params.version)

    # -- iteration -----------------------------------------------------------------------

    def __len__(self) -> int:
        """Batches per epoch for this shard."""
        return self.shard_size // self.batch_size if self.drop_last else self._reader_batches

    def __iter__(self):
        if self.step >= len(self):  # the previous loop stopped right after the last batch
            self._finish_epoch()
        while self.step < len(self):
            batch = self._take()
            self.step += 1
            if self.prefetch and self.step < len(self):
                self._pending = self._executor().submit(self._prepare, self.epoch, self.step, True)
            yield batch
        self._finish_epoch()

    def reset(self) -> None:
        """End the current epoch now (its remaining images are read and dropped); the next
        iteration starts a new epoch."""
        self._finish_epoch()

    def close(self) -> None:
        """Stop the prefetch thread. A batch being prepared is finished and kept: the next
        iteration yields it (its source output is already taken from the reader)."""
        if self._pending is not None:
            self._pending.result()
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastpolicy-prefetch")
            if self.device == "gpu":
                self._side_stream = torch.cuda.Stream()
        return self._worker

    def _settle(self) -> _Prepared | None:
        """Wait for the batch being prepared ahead, if any, and take it."""
        pending, self._pending = self._pending, None
        return None if pending is None else pending.result()

    def _finish_epoch(self) -> None:
        ran = self.step + (1 if self._settle() is not None else 0)  # source iterations already run
        while ran < self._reader_batches:
            self._run_source()
            ran += 1
        self.epoch, self.step = self.epoch + 1, 0

    def _run_source(self):
        try:
            return self._source.run()
        except RuntimeError as error:
            self._explain_failure(error)

    def _explain_failure(self, error: Exception):
        if self.images_list is None:
            raise error
        message = str(error).splitlines()
        log.warning(
            f"fastpolicy: DALI failed to read a batch ({message[-1] if message else error}); "
            f"decoding all {len(self.images_list)} files to find the bad ones …"
        )
        try:
            check_files(self.images_list, verify="decode", on_bad="raise", workers=max(2, self.num_threads))
        except BadImageError as bad:
            raise BadImageError(bad.bad, hint="pass on_bad='skip' with verify='decode' to drop them") from error
        raise error

    def _take(self) -> Batch:
        """The batch at the current position: prepared ahead (re-augmented if the policies
        changed since), or now."""
        prepared = self._settle()
        if prepared is None:
            prepared = self._prepare(self.epoch, self.step, False)
        elif self.device == "gpu":
            current = torch.cuda.current_stream()
            if prepared.ready is not None:
                current.wait_event(prepared.ready)
            for tensor in (prepared.source, prepared.images, prepared.labels):
                tensor.record_stream(current)
        if prepared.version != self.version:
            started = time.perf_counter()
            prepared.images, prepared.params, prepared.version = self._augment(
                prepared.source, prepared.n, self.epoch, self.step
            )
            self.timings.add("reaugment", time.perf_counter() - started)
        started = time.perf_counter()
        batch = Batch(
            prepared.images,
            prepared.labels.repeat(self.M),
            torch.arange(self.M, device=prepared.labels.device).repeat_interleave(prepared.n),
            version=prepared.version,
            params=prepared.params,
            indices=prepared.indices,
            epoch=self.epoch,
            step=self.step,
        )
        self.timings.add("batch", time.perf_counter() - started)
        return batch

    def _prepare(self, epoch: int, step: int, ahead: bool) -> _Prepared:
        """Run the source for batch ``step``, assemble the one buffer and augment it; ahead
        on a GPU: on the side stream, with an event marking the batch ready."""
        stream = self._side_stream if ahead and self.device == "gpu" else None
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            checkpoint = self._source.checkpoint() if ahead else None
            started = time.perf_counter()
            outputs = self._run_source()
            self.timings.add("source", time.perf_counter() - started)
            started = time.perf_counter()
            n = min(self.batch_size, self.shard_size - step * self.batch_size)
            source = self._one_buffer(outputs[0])
            labels = torch.as_tensor(np.array(outputs[1].as_tensor()).reshape(-1)[:n].astype(np.int64))
            indices = self._indices(outputs[2])[:n]
            self.timings.add("assemble", time.perf_counter() - started)
            images, params, version = self._augment(source, n, epoch, step)
            labels = labels.to(source.device, non_blocking=True)
            ready = None
            if stream is not None:
                ready = torch.cuda.Event()
                ready.record(stream)
        return _Prepared(source, images, labels, indices, n, params, version, ready, checkpoint)

    def _augment(self, source: torch.Tensor, n: int, epoch: int, step: int):
        """Sample batch (epoch, step)'s parameters under the current policies and apply them."""
        started = time.perf_counter()
        params, version = self._sample(n, epoch, step)
        self.timings.add("sample", time.perf_counter() - started)
        started = time.perf_counter()
        images = self._policy_stage().apply(source[:n], params, self._out)
        self.timings.add("stage", time.perf_counter() - started)
        return images, params, version

    def _one_buffer(self, stacked) -> torch.Tensor:
        """The source's copies, uint8 [N, M, H, W, C] (image-major): on the CPU DALI's own output
        buffer (valid until the source runs again, and used only before that); on a GPU one
        device copy of it (DALI may reuse its buffer while the stage still reads)."""
        dense = stacked.as_tensor()
        shape = list(dense.shape())
        if self.device == "cpu":
            array: np.ndarray | torch.Tensor = np.asarray(dense)
        else:
            from nvidia.dali.plugin.pytorch import feed_ndarray

            array = torch.empty(shape, dtype=torch.uint8, device="cuda")
            feed_ndarray(dense, array, cuda_stream=torch.cuda.current_stream())
        return torch.as_tensor(array)

    def _indices(self, output) -> np.ndarray:
        if self.images_list is None:
            return np.array(output.as_tensor()).reshape(-1).astype(np.int64)
        return np.array([self._file_index[bytes(np.array(output[i])).decode()] for i in range(len(output))])

    # -- resume --------------------------------------------------------------------------

    def fingerprint(self) -> dict:
        """What this loader reads, to tell a resumed run it has the same data:
        ``{"kind": "files" | "arrays", "images": count, "sha256": 16 hex}``, the hash over the
        file paths and labels (files) or the image and label bytes (arrays); sharding and
        augmentation settings are not part of it."""
        digest = hashlib.sha256()
        if self.images_list is not None:
            kind, count = "files", len(self.images_list)
            for path, label in zip(self.images_list.files, self.images_list.labels.tolist()):
                digest.update(f"{path}\t{label}\n".encode("utf-8", "surrogateescape"))
        else:
            assert self._images is not None
            kind, count = "arrays", len(self._images)
            digest.update(str(self._images.shape).encode())
            digest.update(np.ascontiguousarray(self._images).data)
            digest.update(np.ascontiguousarray(self._labels, dtype=np.int64).data)
        return {"kind": kind, "images": count, "sha256": digest.hexdigest()[:16]}

    def state_dict(self) -> dict:
        """Everything needed to continue with the same batches: position, policies, DALI state
        (taken before a batch prepared ahead, so a resumed loader makes that batch again)."""
        samplers, version = self._samplers
        policies = None if samplers is None else [p.to_dict() for p in samplers]
        checkpoint = self._pending.result().checkpoint if self._pending is not None else self._source.checkpoint()
        return {
            "epoch": self.epoch,
            "step": self.step,
            "version": version,
            "policies": policies,
            "source": base64.b64encode(checkpoint).decode("ascii"),
            "shard": [self.shard_id, self.num_shards],
            "batch_size": self.batch_size,
            "M": self.M,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (same data, batch size, M and sharding)."""
        from ..policies import sampler_from_dict

        for key in ("batch_size", "M"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state has {key}={state[key]}, this loader {getattr(self, key)}")
        if list(state["shard"]) != [self.shard_id, self.num_shards]:
            raise ValueError(f"state is of shard {state['shard']}, this loader {[self.shard_id, self.num_shards]}")
        self._settle()
        self.epoch, self.step = state["epoch"], state["step"]
        position = self.epoch * self._reader_batches + self.step
        self._source = self._build_source(base64.b64decode(state["source"]), position=position)
        samplers = None if state["policies"] is None else share_equal(sampler_from_dict(p) for p in state["policies"])
        self._samplers = (samplers, state["version"])
