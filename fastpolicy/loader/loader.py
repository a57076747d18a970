"""PolicyDALILoader: the M×N enlarged batch, with per-sample policies that change every step.

It composes parts with one job each: the *dataset* (:mod:`.dataset`: files or arrays,
labels by index, fingerprint); the *source* (:mod:`.source`: a DALI pipeline built once
that decodes each image once and stacks M baseline-augmented copies into **one** uint8
buffer ``[N, M, H, W, C]``); the *policy set* (:mod:`.policy_set`: the M policies, their
version, each batch's parameters seeded by ``(seed, shard, epoch, step)``, Cutout as a
final slot); the *policy stage* (:func:`~fastpolicy.backends.stage.make_stage`: applies
them and writes the output dtype, layout and normalization); the *prefetcher*
(:mod:`.prefetch`: with ``prefetch=1``, the default on a GPU, the next batch is made on a
background thread, on a side CUDA stream on a GPU); and the *state* (:mod:`.state`).
Settings come in groups (:mod:`.settings`).

**When** :meth:`PolicyDALILoader.set_policies` **takes effect**: at the next batch the
iterator yields, with or without prefetching. A batch made ahead with older policies is
re-augmented from its kept source copies with parameters drawn for the same position, so
the prefetching loader yields exactly the synchronous loader's batches; a new epoch's
first batch is never made before the epoch starts. Every :class:`Batch` reports the
policy version it was really augmented with (``batch.version``).

Batches are policy-major: row ``m·N + n`` is copy ``m`` of image ``n``, with policy ``m``.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from .. import augmix
from ..backends.stage import OutputSpec, make_stage, resolve_backend
from ..device import resolve_device
from ..schedule import PolicySchedule
from .batch import Batch
from .dataset import ArrayDataset, FileDataset, open_dataset
from .memory import check_fits
from .policy_set import PolicySet
from .prefetch import Prefetcher, Prepared, Timings
from .settings import Augment, FileChecks, Output, Pipeline, Sharding, check_sizes, output_of
from .source import Source
from .state import LoaderState


class PolicyDALILoader:
    """The enlarged-batch loader. Iterate it for one epoch of :class:`Batch` es.

    Args:
        data: an ImageNet-layout folder (``root/<class>/<image>``), a file list (``path label``
            lines), an :class:`~fastpolicy.data.files.ImageList`, webdataset or TFRecord shards (a
            brace pattern, a folder or a list; :mod:`.shards`) or a dataset (:mod:`.dataset`;
            in-memory arrays: :meth:`from_arrays`).
        batch_size: N, distinct images per batch; a batch holds M·N rows.
        M: copies of every image (one policy each).
        image_size: S, the side of the square crops of files, in [1, 8192]; arrays keep
            their size. M·N·S·S·3 must stay within 8 GiB (``settings.MAX_BATCH_BYTES``).
        device: ``"gpu"``, ``"cpu"`` or None (GPU if torch sees one). Decoding and the
            policy run there; tensors come out there.
        policies: initial policies (see :meth:`set_policies`); default none (baseline only).
        output: the element type (``"float"``/``"float32"``, ``"float16"``, ``"bfloat16"``:
            normalized; ``"uint8"``: pixels), or an :class:`~.settings.Output` (with mean, std).
        layout: ``"nchw"`` (default) or ``"channels_last"`` (with a dtype name for ``output``).
        sharding: :class:`~.settings.Sharding`, this process's part of the data.
        augment: :class:`~.settings.Augment`: baseline, slots, fill, magnitude scale, Cutout, backend.
        pipeline: :class:`~.settings.Pipeline`: seed, shuffle, drop_last, threads, prefetch.
        checks: :class:`~.settings.FileChecks` for files: verify, on_bad, max_pixels.
    """

    def __init__(
        self,
        data,
        batch_size: int,
        M: int = 8,
        image_size: int = 224,
        device: str | None = None,
        *,
        policies=None,
        output: str | Output = "float",
        layout: str | None = None,
        sharding: Sharding | None = None,
        augment: Augment | None = None,
        pipeline: Pipeline | None = None,
        checks: FileChecks | None = None,
    ):
        pipeline = pipeline or Pipeline()
        self._arguments = dict(
            data=data, batch_size=batch_size, M=M, image_size=image_size, device=device, output=output,
            layout=layout, sharding=sharding, augment=augment, pipeline=pipeline, checks=checks,
        )  # fmt: skip
        """What :meth:`__reduce__` rebuilds the loader from (its settings, not its pipelines)."""
        self.sharding, self.augment, self.pipeline = sharding or Sharding(), augment or Augment(), pipeline
        kind = ArrayDataset if isinstance(data, ArrayDataset) else FileDataset
        self.size = data.shape if isinstance(data, ArrayDataset) else (image_size, image_size)
        self.channels = data.channels if isinstance(data, ArrayDataset) else 3
        self.batch_size, self.M = check_sizes(batch_size, M, *self.size, self.channels)
        self.baseline = kind.baseline(self.augment.baseline)  # checked before scanning files
        self.output_spec: OutputSpec = output_of(output, layout).spec(self.channels)
        """What the stage writes: dtype, layout and the normalization's mean and std."""
        self.device = resolve_device(device)
        self.backend = resolve_backend(self.augment.backend, self.device)
        self.prefetch = (1 if self.device == "gpu" else 0) if pipeline.prefetch is None else pipeline.prefetch
        rows = self.M * self.batch_size  # refused here, with its figure, not by an allocation after set-up
        check_fits(rows, *self.size, self.channels, self.output_spec.dtype, self.device, self.prefetch)
        self.dataset = open_dataset(data, checks or FileChecks(), max(2, pipeline.num_threads))
        self.images_list = self.dataset.images if isinstance(self.dataset, FileDataset) else None
        """The files read (None: arrays); ``files``: their paths, by dataset index."""
        self.files = None if self.images_list is None else self.images_list.files
        self.shard_size = self.sharding.size(len(self.dataset))
        if self.shard_size < (batch_size if pipeline.drop_last else 1):
            raise ValueError(f"{self.sharding} holds {self.shard_size} images, fewer than one batch of {batch_size}")
        self._reader_batches = -(-self.shard_size // batch_size)  # source runs per epoch
        seed, final = (pipeline.seed, self.sharding.shard_id), self.augment.final_slots(min(self.size))
        self.policy_set = PolicySet(M, self.augment.slots, *seed, self.augment.magnitude_scale, final)
        self.timings, self.builds, self.epoch, self.step, self._stage = Timings(), 0, 0, 0, None
        self._ids: dict = {}
        self.schedule: PolicySchedule | None = None  # each epoch's policies are set as the epoch starts
        self.prefetcher = Prefetcher(self.device, self.timings)
        self._source = self._build_source()
        if policies is not None:
            self.set_policies(policies)

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        M: int = 8,
        device: str | None = None,
        *,
        policies=None,
        output: str | Output = "float",
        layout: str | None = None,
        sharding: Sharding | None = None,
        augment: Augment | None = None,
        pipeline: Pipeline | None = None,
    ) -> PolicyDALILoader:
        """A loader over in-memory images: uint8 (N, H, W) or (N, H, W, C), C = 1 or 3; labels (N,).
        Default baseline ``"pad_crop"`` (pad 4, random crop, flip); a float output without mean
        and std is normalized by the arrays' own per-channel statistics. Else as the constructor."""
        dataset = ArrayDataset(images, labels)
        out = output_of(output, layout)
        if out.dtype != "uint8" and out.mean is None:
            out = Output(out.dtype, out.layout, *dataset.stats())
        make = functools.partial(cls, sharding=sharding, augment=augment, pipeline=pipeline)
        return make(dataset, batch_size, M, device=device, policies=policies, output=out)

    def _build_source(self, checkpoint: bytes | None = None, position: int = 0) -> Source:
        self.builds += 1
        crops = (self.batch_size, self.M, self.baseline, self.size[0], self.device)
        return Source(self.dataset, *crops, self.sharding, self.pipeline, checkpoint=checkpoint, position=position)

    def _policy_stage(self):
        if self._stage is None:
            shape = dict(max_batch=self.M * self.batch_size, height=self.size[0], width=self.size[1])
            shape |= dict(channels=self.channels, slots=self.policy_set.slots)
            options = dict(fill=self.augment.fill, num_threads=self.pipeline.num_threads)
            self._stage = make_stage(self.backend, self.device, **shape, **options)
            self.builds += self._stage.builds
        return self._stage

    def set_policies(self, policies) -> int:
        """Use ``policies`` (M samplers, one for all, a name or path, or None; see
        :meth:`.policy_set.PolicySet.set`) from the next batch the iterator yields on; returns
        the new policy version. No pipeline is rebuilt.

        A :class:`~fastpolicy.schedule.PolicySchedule` (or its ``schedule.json``) is followed
        epoch by epoch: each epoch, as it starts, uses its policies (copy m: policy m mod K of
        the epoch's K; M must be a multiple of K), and epochs past its end keep the last's."""
        from ..policies import resolve

        if isinstance(policies, (str, os.PathLike)):
            policies = resolve(os.fspath(policies))
        if isinstance(policies, PolicySchedule):
            for epoch in range(len(policies)):  # refused now, not at a later epoch, if M does not fit one
                policies.for_copies(epoch, self.M)
            self.schedule = policies
            return self.policy_set.set(policies.for_copies(self.epoch, self.M))
        self.schedule = None
        return self.policy_set.set(policies)

    def _follow_schedule(self) -> None:
        """At an epoch's start, that epoch's policies of :attr:`schedule` (if one is followed)."""
        if self.schedule is not None and self.step == 0:
            self.policy_set.set(self.schedule.for_copies(self.epoch, self.M))

    @property
    def version(self) -> int:
        """The current policy version (bumped by every :meth:`set_policies`)."""
        return self.policy_set.version

    @property
    def policies(self):
        """The policy per copy (list of M) or None."""
        return self.policy_set.policies

    def __repr__(self) -> str:
        """What the loader reads and makes: its data, N, M, S, device, backend, policies and position."""
        kind = "array" if isinstance(self.dataset, ArrayDataset) else "file"
        data = self._arguments["data"]
        where = f" from {os.fspath(data)}" if isinstance(data, (str, os.PathLike)) else ""
        policies = self.policies
        what = (
            f"schedule of {len(self.schedule)} epochs"
            if self.schedule is not None
            else "none"
            if policies is None
            else (
                f"Policy[{policies[0].space.name}] of {len(policies[0].sub_policies)} sub-policies"
                if hasattr(policies[0], "sub_policies")
                else repr(policies[0])
            )
            if all(p is policies[0] for p in policies)
            else f"{len(policies)} policies"
        )
        return (
            f"PolicyDALILoader({len(self.dataset)} {kind} images{where}, N={self.batch_size}, M={self.M}, "
            f"S={self.size[0]}×{self.size[1]}, device={self.device}, backend={self.backend}, policies: {what} "
            f"(version {self.version}), epoch {self.epoch} step {self.step})"
        )

    def __len__(self) -> int:
        """Batches per epoch for this shard."""
        return self.shard_size // self.batch_size if self.pipeline.drop_last else self._reader_batches

    def __iter__(self):
        if self.step >= len(self):  # the previous loop stopped right after the last batch
            self._finish_epoch()
        self._follow_schedule()
        while self.step < len(self):
            batch = self._take()
            self.step += 1
            if self.prefetch and self.step < len(self):
                self.prefetcher.ahead(functools.partial(self._prepare, self.epoch, self.step, True))
            yield batch
        self._finish_epoch()

    def reset(self) -> None:
        """End the current epoch now (its remaining images are read and dropped)."""
        self._finish_epoch()

    def close(self) -> None:
        """Stop the prefetch thread; a batch being made is finished and kept for the next iteration."""
        self.prefetcher.close()

    def _finish_epoch(self) -> None:
        ran = self.step + (1 if self.prefetcher.settle() is not None else 0)  # source runs already made
        for _ in range(ran, self._reader_batches):
            self._source.skip()
        self.epoch, self.step = self.epoch + 1, 0

    def _take(self) -> Batch:
        """The batch at the current position: made ahead (re-augmented if stale), or now."""
        prepared = self.prefetcher.take(self.version, self._reaugment)  # same position: same parameters
        if prepared is None:
            prepared = self._prepare(self.epoch, self.step, False)
        with self.timings.timed("batch"):
            info = dict(params=prepared.params, indices=prepared.indices, epoch=self.epoch, step=self.step)
            return Batch(prepared.images, prepared.labels, prepared.rows, version=prepared.version, **info)

    def _policy_ids(self, n: int, device) -> torch.Tensor:
        """int64 (M·n,): the policy index of every row on ``device``, kept per n on the CPU (a
        batch's tensor is its own: callers may write to it; a device copy is made on the
        current stream, as the labels')."""
        ids = self._ids.get(n)
        if ids is None:
            ids = self._ids[n] = np.repeat(np.arange(self.M, dtype=np.int64), n)
        if torch.device(device).type == "cpu":
            return torch.from_numpy(ids.copy())
        return torch.from_numpy(ids).to(device, non_blocking=True)

    def _prepare(self, epoch: int, step: int, ahead: bool) -> Prepared:
        """Batch ``step``'s source copies, augmented (ahead: with the source's checkpoint before)."""
        checkpoint = self._source.checkpoint() if ahead else None
        with self.timings.timed("source"):
            source, indices, labels = self._source.run()
        n = min(self.batch_size, self.shard_size - step * self.batch_size)
        images, params, version = self._augment(source, n, epoch, step)
        with self.timings.timed("assemble"):  # the batch record (prefetching: off the training thread)
            indices = indices[:n]
            label_tensor = torch.from_numpy(np.tile(np.asarray(labels[:n], np.int64), self.M))
            label_tensor = label_tensor.to(source.device, non_blocking=True)
            rows = self._policy_ids(n, source.device)
        return Prepared(source, images, label_tensor, rows, indices, n, params, version, checkpoint=checkpoint)

    def _augment(self, source: torch.Tensor, n: int, epoch: int, step: int):
        """Sample batch (epoch, step)'s parameters under the current policies and apply them."""
        with self.timings.timed("sample"):
            params, version = self.policy_set.sample(n, epoch, step, len(self))
        with self.timings.timed("stage"):
            if params is not None and params.mix is not None:  # AugMix: chains, their mix, the final slots
                images = augmix.apply_stage(self._policy_stage(), source[:n], params, self.output_spec)
            else:
                images = self._policy_stage().apply(source[:n], params, self.output_spec)
        return images, params, version

    def _reaugment(self, ready: Prepared) -> None:
        ready.images, ready.params, ready.version = self._augment(ready.source, ready.n, self.epoch, self.step)

    def fingerprint(self) -> dict:
        """What this loader reads, to tell a resumed run it has the same data (not sharding nor
        augmentation): ``{"kind": "files" | "arrays" | "webdataset" | "tfrecord", "images", "sha256"}``."""
        return self.dataset.fingerprint()

    def state_dict(self) -> dict:
        """:class:`~.state.LoaderState` as a dict: position, policies, DALI state (from before a
        batch made ahead, so a resumed loader makes it again)."""
        pending = self.prefetcher.wait()
        source = pending.checkpoint if pending is not None and pending.checkpoint else self._source.checkpoint()
        policies, version = self.policy_set.state()
        shard = (self.sharding.shard_id, self.sharding.num_shards)
        return LoaderState(self.epoch, self.step, version, policies, source, shard, self.batch_size, self.M).to_dict()

    def __reduce__(self):
        """Pickling keeps the settings and the state: the copy is built anew (its own DALI
        pipelines) from the same arguments, then continues from :meth:`state_dict` — the same
        next batches, policies and version (a schedule is followed again from its epoch)."""
        return (_rebuild, (self._arguments, self.schedule, self.state_dict()))

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (same data, batch size, M and sharding)."""
        restored = LoaderState.from_dict(state)
        restored.check(self.batch_size, self.M, (self.sharding.shard_id, self.sharding.num_shards))
        self.prefetcher.settle()
        self.epoch, self.step = restored.epoch, restored.step
        position = self.epoch * self._reader_batches + self.step
        self._source = self._build_source(restored.source, position=position)
        self.policy_set.restore(restored.policies, restored.version)


def _rebuild(arguments: dict, schedule, state: dict) -> PolicyDALILoader:
    """The loader :meth:`PolicyDALILoader.__reduce__` describes."""
    loader = PolicyDALILoader(**arguments)
    if schedule is not None:
        loader.set_policies(schedule)
    loader.load_state_dict(state)
    return loader
