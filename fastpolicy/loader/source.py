"""The source: read, decode once, and make M copies with their own baseline augmentation.

Outputs per iteration (:meth:`Source.run`): the copies, N samples of uint8 [M, H, W, C]
(copy m of every image, all of one size, stacked by DALI's threads: one dense
[N, M, H, W, C] buffer, image-major), and the N dataset indices as numbers (labels are
the dataset's to look up). Readers and random ops are DALI's, so DALI checkpoints restore
the position and the random state.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import nvidia.dali.tfrecord as tfrec
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.pipeline import Pipeline as DALIPipeline

from .dali_priority import apply_dali_priority, resolve_priority, thread_ids
from .settings import BASELINES
from .shards import ShardDataset

if TYPE_CHECKING:
    from .dataset import Dataset
    from .settings import Pipeline, Sharding


def baseline(images, kind: str, size: int):
    """One copy of ``images`` (DataNode, uint8 HWC) through baseline ``kind`` (:data:`BASELINES`)."""
    if kind == "imagenet":
        crops = fn.random_resized_crop(
            images, size=(size, size), random_area=(0.08, 1.0), random_aspect_ratio=(3 / 4, 4 / 3)
        )
        return fn.flip(crops, horizontal=fn.random.coin_flip())
    if kind == "center":
        resized = fn.resize(images, resize_shorter=round(size * 256 / 224))
        return fn.crop(resized, crop=(size, size))
    if kind == "pad_crop":
        start = fn.random.uniform(values=list(range(-4, 5)), shape=[2], dtype=types.INT32)
        crops = fn.slice(
            images,
            start=start,
            shape=images.shape(dtype=types.INT32)[0:2],
            axis_names="HW",
            out_of_bounds_policy="pad",
            fill_values=0,
        )
        return fn.flip(crops, horizontal=fn.random.coin_flip())
    if kind == "none":
        return images
    raise ValueError(f"unknown baseline {kind!r}; choose from {BASELINES}")


class ArraySource:
    """Batches of in-memory images and their indices for ``external_source``, epoch by epoch.

    Batch ``b`` of epoch ``e`` holds this shard's part of a permutation of all indices
    (seeded by ``(seed, e)``); the shard's last batch is padded with its first indices
    (the loader drops or trims it). ``position`` (batches handed out) is where it starts,
    so a resumed loader re-creates it at the consumed position.
    """

    def __init__(
        self,
        images: np.ndarray,
        batch_size: int,
        shard_id: int,
        num_shards: int,
        shuffle: bool,
        seed: int,
        position: int = 0,
    ):
        self.images, self.batch_size = images, batch_size
        self.shard = slice(len(images) * shard_id // num_shards, len(images) * (shard_id + 1) // num_shards)
        self.shard_size = self.shard.stop - self.shard.start
        self.batches = -(-self.shard_size // batch_size)
        self.shuffle, self.seed, self.position = shuffle, seed, position

    def indices(self, position: int) -> np.ndarray:
        """int64[N]: dataset indices of batch number ``position`` (counted over all epochs)."""
        epoch, batch = divmod(position, self.batches)
        order = np.arange(len(self.images))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
        mine = order[self.shard]
        chunk = mine[batch * self.batch_size : (batch + 1) * self.batch_size]
        return np.concatenate([chunk, np.resize(mine, self.batch_size - len(chunk))])

    def __iter__(self):
        return self

    def __next__(self):
        index = self.indices(self.position)
        self.position += 1
        return list(self.images[index]), index.astype(np.int64)


def shard_reader(name: str, args: dict):
    """``(encoded images, labels)`` DataNodes of DALI's ``"webdataset"`` reader (labels: the
    label member's bytes) or ``"tfrecord"`` reader (labels: int64 [1], −1 when missing);
    ``args`` from :meth:`~.shards.ShardDataset.reader` with the sharding and order."""
    if name == "webdataset":
        return fn.readers.webdataset(name="reader", pad_last_batch=True, **args)
    args = dict(args)
    features = {
        args.pop("image_feature"): tfrec.FixedLenFeature([], tfrec.string, ""),
        args.pop("label_feature"): tfrec.FixedLenFeature([1], tfrec.int64, -1),
    }
    read = fn.readers.tfrecord(name="reader", pad_last_batch=True, features=features, **args)
    return tuple(read[key] for key in features)  # type: ignore[index]


def source_pipeline(
    *, reader: tuple[str, dict] | None, arrays: ArraySource | None, copies: int, kind: str, size: int, device: str
):
    """DALI graph of the source stage (call through ``pipeline_def``): the stacked copies,
    then the dataset indices (files, arrays) or each sample's label and ``source_info``
    (shards). ``reader``: ``("file", args)`` (the reader gets no labels, so its label output
    is each file's index in ``files``), ``("webdataset", args)`` or ``("tfrecord", args)``;
    None: ``arrays``."""
    if reader is None:
        images, indices = fn.external_source(source=arrays, num_outputs=2, batch=True, layout=["HWC", ""])
        outputs: tuple = (indices,)
        if device == "gpu":
            images = images.gpu()
    else:
        name, args = reader
        if name == "file":
            encoded, indices = fn.readers.file(name="reader", pad_last_batch=True, **args)
            outputs = (indices,)
        else:
            encoded, labels = shard_reader(name, args)
            outputs = (labels, fn.get_property(encoded, key="source_info"))
        images = fn.decoders.image(encoded, device="mixed" if device == "gpu" else "cpu", output_type=types.RGB)
    return (fn.stack(*[baseline(images, kind, size) for _ in range(copies)], axis_name="M"), *outputs)


def build_source(
    *,
    batch_size: int,
    num_threads: int,
    device: str,
    device_id: int | None,
    seed: int,
    checkpoint=None,
    priority: str = "normal",
    **graph,
) -> DALIPipeline:
    """Build the source pipeline (prefetching, checkpointable), its threads at ``priority``
    (:mod:`.dali_priority`); ``graph`` goes to :func:`source_pipeline`."""
    before = thread_ids()
    with warnings.catch_warnings():
        # The array source's position is restored by the loader, not by DALI's checkpoint.
        warnings.filterwarnings("ignore", message="Checkpointing enabled in a pipeline with external source")
        pipe = pipeline_def(source_pipeline)(
            **graph,
            device=device,
            batch_size=batch_size,
            num_threads=num_threads,
            device_id=(device_id or 0) if device == "gpu" else None,
            seed=seed,
            enable_checkpointing=True,
            checkpoint=checkpoint,
            prefetch_queue_depth=2,
        )
        pipe.build()
    apply_dali_priority(before, priority)
    return pipe


class Source:
    """The source of one loader: the DALI pipeline over ``dataset`` (built once; rebuilt only
    to resume), batch after batch.

    Args:
        dataset: a :class:`~fastpolicy.loader.dataset.FileDataset` (read with DALI's file
            reader), a :class:`~fastpolicy.loader.shards.ShardDataset` (its webdataset or
            TFRecord reader) or an :class:`~fastpolicy.loader.dataset.ArrayDataset` (``external_source``).
        batch_size: N per run; the shard's last batch is padded (the loader trims it).
        copies: M, the copies of every image.
        baseline: the copies' augmentation (:data:`BASELINES`); size: S, their side for files.
        device: ``"gpu"`` (decoding and copies on the GPU) or ``"cpu"``.
        sharding, pipeline: the loader's :class:`~fastpolicy.loader.settings.Sharding` and
            :class:`~fastpolicy.loader.settings.Pipeline` (seed, shuffle, threads, their priority).
        checkpoint: a DALI checkpoint to start from (:meth:`checkpoint`); position: batches
            already handed out over all epochs (restores the array source's position).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        copies: int,
        baseline: str,
        size: int,
        device: str,
        sharding: Sharding,
        pipeline: Pipeline,
        *,
        checkpoint: bytes | None = None,
        position: int = 0,
    ):
        from .dataset import FileDataset

        self.dataset, self.device, self.workers = dataset, device, max(2, pipeline.num_threads)
        shard = {"shard_id": sharding.shard_id, "num_shards": sharding.num_shards}
        reader, arrays = None, None
        order = dict(shuffle_after_epoch=pipeline.shuffle, seed=pipeline.seed, stick_to_shard=False, **shard)
        if isinstance(dataset, FileDataset):
            reader = ("file", dict(files=dataset.images.files, **order))
        elif isinstance(dataset, ShardDataset):
            name, args = dataset.reader()
            reader = (name, args | order)
        else:
            arrays = ArraySource(
                dataset.images, batch_size, **shard, shuffle=pipeline.shuffle, seed=pipeline.seed, position=position
            )
        self.pipe = build_source(
            reader=reader,
            arrays=arrays,
            copies=copies,
            kind=baseline,
            size=size,
            batch_size=batch_size,
            num_threads=pipeline.num_threads,
            device=device,
            device_id=torch.cuda.current_device() if device == "gpu" else None,
            seed=pipeline.seed * 1009 + sharding.shard_id + 1,
            checkpoint=checkpoint,
            priority=resolve_priority(pipeline.dali_priority, device),
        )

    def run(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """The next batch: the copies, uint8 [N, M, H, W, C] (image-major), int64[N] dataset
        indices and int64[N] labels. On the CPU the copies are DALI's own output buffer (valid
        until the next run, and used only before it); on a GPU one device copy of it, on the
        current stream (DALI may reuse its buffer while the stage still reads). A failed read
        is explained by naming the bad files or shard samples (``dataset.explain``)."""
        copies, *rest = self._run()
        dense = copies.as_tensor()
        if self.device == "cpu":
            array: np.ndarray | torch.Tensor = np.asarray(dense)
        else:
            from nvidia.dali.plugin.pytorch import feed_ndarray

            array = torch.empty(list(dense.shape()), dtype=torch.uint8, device="cuda")
            feed_ndarray(dense, array, cuda_stream=torch.cuda.current_stream())
        if isinstance(self.dataset, ShardDataset):  # labels and source_info from the reader
            raw, infos = rest
            texts = [bytes(np.asarray(infos[i])).decode("utf-8", "surrogateescape") for i in range(len(infos))]
            indices, labels = self.dataset.resolve(texts, [np.asarray(raw[i]) for i in range(len(raw))])
        else:
            indices = np.array(rest[0].as_tensor()).reshape(-1).astype(np.int64)
            labels = self.dataset.labels(indices)
        return torch.as_tensor(array), indices, labels

    def skip(self) -> None:
        """Run once and drop the batch (the rest of an epoch that ends early)."""
        self._run()

    def _run(self):
        try:
            return self.pipe.run()
        except RuntimeError as error:
            self.dataset.explain(error, self.workers)
            raise

    def checkpoint(self) -> bytes:
        """DALI's checkpoint: the reader's position and every random op's state."""
        return self.pipe.checkpoint()
