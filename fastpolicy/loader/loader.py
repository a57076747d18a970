"""PolicyDALILoader: the M×N enlarged batch, with per-sample policies that change every step.

Two DALI pipelines, each built once:

1. the *source* (:mod:`.source`): read, decode each image once, make M copies with
   their own baseline augmentation; it prefetches, as DALI loaders do;
2. the *policy stage*, fed the M·N images and freshly sampled per-sample parameters
   every step and run at once: the fused CUDA kernels on a GPU
   (:mod:`fastpolicy.backends.kernel_stage`, normalizing and transposing in the same
   launch), or a DALI pipeline (:class:`~fastpolicy.backends.dali_stage.DaliPolicyStage`);
   so :meth:`PolicyDALILoader.set_policies` takes effect at the very next batch
   and every :class:`Batch` reports the policy version it was augmented with.

Batches are policy-major: row ``m·N + n`` is copy ``m`` of image ``n`` and carries
policy index ``m``.
"""

from __future__ import annotations

import base64
import hashlib
import os

import numpy as np
import torch

from ..data.files import (DEFAULT_MAX_PIXELS, BadImageError, ImageList, check_files, describe_scan,
                          read_file_list, scan_folder)
from ..distribution import AWSDistribution
from ..params import NO_OP, PolicyParams
from ..registry import OPS
from ..policy import Policy
from ..backends.kernel_stage import normalization
from .source import BASELINES, ArraySource, build_source

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Batch(tuple):
    """``(images, labels, policy_ids)``, unpackable as a 3-tuple, with what produced it.

    Attributes:
        images: torch (B, C, H, W): float32 normalized, or uint8 with ``output="uint8"``.
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


def _resolve_device(device: str | None) -> str:
    if device is None:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu', 'gpu' or None (auto), got {device!r}")
    if device == "gpu" and not torch.cuda.is_available():
        raise RuntimeError("device='gpu' but torch sees no CUDA device")
    return device


BACKENDS = ("cupy", "native", "dali", "emulated", "numpy")
"""Policy-stage backends of :class:`PolicyDALILoader`."""


def _resolve_backend(backend: str | None, device: str) -> str:
    if backend is None:
        if device == "gpu":
            try:
                import cupy  # noqa: F401

                return "cupy"
            except ImportError:
                return "dali"
        # the fast CPU stage is compiled at first use; without a compiler, DALI's operators
        from ..backends.kernel_build import host_compiler

        return "native" if host_compiler() else "dali"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cupy" and device != "gpu":
        raise ValueError("backend='cupy' runs on a CUDA GPU; on the CPU use 'native' or 'dali' (or 'emulated' to "
                         "test the kernels)")
    return backend


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
        print(f"fastpolicy: {data if isinstance(data, str) else 'image list'}: {left_out}")
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
        output: ``"float"`` (normalized float32) or ``"uint8"``.
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
    """

    def __init__(self, data, batch_size: int, M: int = 8, image_size: int = 224, device: str | None = None,
                 shard_id: int = 0, num_shards: int = 1, seed: int = 0, *, backend: str | None = None,
                 baseline: str | None = None, shuffle: bool = True, drop_last: bool = True,
                 output: str = "float", mean=None, std=None, policies=None, slots: int = 2, fill: int = 128,
                 magnitude_scale: float = 1.0, cutout: int = 0,
                 verify: str = "header", on_bad: str = "raise", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 num_threads: int = 2,
                 _arrays: tuple[np.ndarray, np.ndarray] | None = None):
        if batch_size < 1 or M < 1:
            raise ValueError(f"batch_size and M must be positive, got {batch_size} and {M}")
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id {shard_id} outside [0, {num_shards})")
        if output not in ("float", "uint8"):
            raise ValueError(f"output must be 'float' or 'uint8', got {output!r}")
        if isinstance(fill, bool) or not isinstance(fill, (int, np.integer)) or not 0 <= fill <= 255:
            raise ValueError(f"fill must be an integer level in 0..255, got {fill!r}")
        if not 0 < magnitude_scale <= 1:
            raise ValueError(f"magnitude_scale must be in (0, 1], got {magnitude_scale!r}")
        if isinstance(cutout, bool) or not isinstance(cutout, (int, np.integer)) or cutout < 0:
            raise ValueError(f"cutout must be a side in pixels ≥ 0, got {cutout!r}")
        self.fill, self.magnitude_scale, self.cutout = int(fill), float(magnitude_scale), int(cutout)
        device = _resolve_device(device)
        backend = _resolve_backend(backend, device)
        self.batch_size, self.M, self.seed, self.slots = batch_size, M, seed, slots
        self.shard_id, self.num_shards, self.shuffle, self.drop_last = shard_id, num_shards, shuffle, drop_last
        self.device, self.backend, self.output, self.num_threads = device, backend, output, num_threads
        self.baseline = baseline or ("pad_crop" if _arrays is not None else "imagenet")
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; choose from {BASELINES}")
        if _arrays is None and self.baseline in ("pad_crop", "none"):  # checked before scanning files
            raise ValueError(f"baseline={self.baseline!r} is for in-memory arrays of one size; "
                             "files use 'imagenet' or 'center'")
        if _arrays is not None:
            self.images_list, (self._images, self._labels) = None, _arrays
            n = len(self._images)
            self.size = self._images.shape[1:3]
            self.channels = self._images.shape[3]
        else:
            self.images_list = _image_list(data, verify, on_bad, max(2, num_threads), max_pixels)
            self._images = self._labels = None
            n = len(self.images_list)
            self.size, self.channels = (image_size, image_size), 3
        self.shard_size = n * (shard_id + 1) // num_shards - n * shard_id // num_shards
        if self.shard_size < (batch_size if drop_last else 1):
            raise ValueError(f"shard {shard_id} of {num_shards} holds {self.shard_size} images, "
                             f"fewer than one batch of {batch_size}")
        self._reader_batches = -(-self.shard_size // batch_size)
        self._mean, self._inv_std = self._normalization(mean, std)
        self.builds = 0
        self.epoch, self.step = 0, 0
        self._rng = np.random.default_rng([seed, shard_id, 1])
        self._policies, self.version = None, 0
        self._source = self._build_source()
        self._stage = None
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
            sample = images[:: max(1, len(images) // 10000)].reshape(-1, images.shape[3]) / 255.0
            std = sample.std(0)  # a constant channel (std 0) is only centred
            kwargs["mean"], kwargs["std"] = tuple(sample.mean(0)), tuple(np.where(std > 0, std, 1.0))
        return cls(None, batch_size, M, image_size=images.shape[1], _arrays=(images, labels), **kwargs)

    def _normalization(self, mean, std):
        mean = IMAGENET_MEAN if mean is None else tuple(mean)
        std = IMAGENET_STD if std is None else tuple(std)
        if self.channels == 1 and len(mean) == 3:
            mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
        if len(mean) != self.channels or len(std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values, got {mean} and {std}")
        self._pixel_mean, self._pixel_inv_std = normalization(mean, std)  # float32, pixel units
        device = "cuda" if self.device == "gpu" else "cpu"  # broadcast over NHWC's last axis
        return torch.from_numpy(self._pixel_mean).to(device), torch.from_numpy(self._pixel_inv_std).to(device)

    def _build_source(self, checkpoint=None, position: int = 0):
        graph = dict(copies=self.M, kind=self.baseline, size=self.size[0])
        if self.images_list is not None:
            graph["reader"] = dict(
                files=self.images_list.files, labels=[int(v) for v in self.images_list.labels],
                shard_id=self.shard_id, num_shards=self.num_shards, shuffle_after_epoch=self.shuffle,
                seed=self.seed, stick_to_shard=False)
            graph["arrays"] = None
            self._file_index = {path: i for i, path in enumerate(self.images_list.files)}
        else:
            graph["reader"] = None
            graph["arrays"] = ArraySource(self._images, self._labels, self.batch_size, self.shard_id,
                                          self.num_shards, self.shuffle, self.seed, position)
        pipe = build_source(batch_size=self.batch_size, num_threads=self.num_threads, device=self.device,
                            device_id=torch.cuda.current_device() if self.device == "gpu" else None,
                            seed=self.seed * 1009 + self.shard_id + 1, checkpoint=checkpoint, **graph)
        self.builds += 1
        return pipe

    def _policy_stage(self):
        if self._stage is None:
            if self.backend in ("emulated", "native"):
                from ..backends.kernel_stage import KernelPolicyStage

                self._stage = getattr(KernelPolicyStage, self.backend)()
            elif self.backend == "dali":
                from ..backends.dali_stage import DaliPolicyStage

                self._stage = DaliPolicyStage(
                    self.M * self.batch_size, *self.size, channels=self.channels,
                    slots=self.slots + (1 if self.cutout else 0),
                    device=self.device, device_id=torch.cuda.current_device() if self.device == "gpu" else None,
                    num_threads=self.num_threads, fill=self.fill)
                self.builds += self._stage.builds
            elif self.backend == "numpy":
                from .. import reference

                self._stage = reference
        return self._stage

    # -- policies ------------------------------------------------------------------------

    def set_policies(self, policies) -> int:
        """Use ``policies`` from the next batch on; returns the new policy version.

        ``policies``: a list of M :class:`~fastpolicy.policy.Policy` (copy m uses
        policy m), one ``Policy`` or one :class:`~fastpolicy.distribution.AWSDistribution`
        for all copies, or None (baseline augmentation only). No pipeline is rebuilt.
        """
        if policies is None:
            samplers = None
        elif isinstance(policies, (Policy, AWSDistribution)):
            samplers = [policies] * self.M
        else:
            samplers = list(policies)
            if len(samplers) != self.M:
                raise ValueError(f"got {len(samplers)} policies for M={self.M} copies")
            for i, p in enumerate(samplers):
                if not isinstance(p, (Policy, AWSDistribution)):
                    raise TypeError(f"policies[{i}] is a {type(p).__name__}, not a Policy or AWSDistribution")
        if samplers is not None:
            k = max(s.n_ops if isinstance(s, Policy) else 2 for s in samplers)
            if k > self.slots:
                raise ValueError(f"policies apply {k} ops per sample; the loader was built with slots={self.slots}")
        self._policies = samplers
        self.version += 1
        return self.version

    @property
    def policies(self):
        """The policy per copy (list of M) or None."""
        return self._policies

    def _sample(self, n: int) -> PolicyParams | None:
        if self._policies is None:
            params = None
        else:
            parts = [p.sample(n, self._rng, policy_index=m, version=self.version).pad_slots(self.slots)
                     for m, p in enumerate(self._policies)]
            params = PolicyParams.concat(parts)
            params = params if self.magnitude_scale == 1 else params.scaled(self.magnitude_scale)
        return params if not self.cutout else self._with_cutout(params, n)

    def _with_cutout(self, params: PolicyParams | None, n: int) -> PolicyParams:
        """``params`` (None: no policy) with one more slot: Cutout of :attr:`cutout` pixels on every row."""
        rows = self.M * n
        if params is None:
            params = PolicyParams(op=np.full((rows, self.slots), NO_OP), bin=np.full((rows, self.slots), -1),
                                  sign=np.ones((rows, self.slots)), value=np.zeros((rows, self.slots)),
                                  center=np.zeros((rows, self.slots, 2)),
                                  partner=np.zeros((rows, self.slots), dtype=np.int64),
                                  policy=np.repeat(np.arange(self.M), n), version=self.version)
        arrays = params.arrays()
        extra = {"op": OPS["Cutout"].id, "bin": -1, "sign": 1, "value": self.cutout / min(self.size),
                 "partner": 0}
        for name, value in extra.items():
            arrays[name] = np.concatenate([arrays[name], np.full((rows, 1), value, arrays[name].dtype)], axis=1)
        arrays["center"] = np.concatenate([arrays["center"], self._rng.random((rows, 1, 2))], axis=1)
        return PolicyParams(**arrays, version=params.version)

    # -- iteration -----------------------------------------------------------------------

    def __len__(self) -> int:
        """Batches per epoch for this shard."""
        return self.shard_size // self.batch_size if self.drop_last else self._reader_batches

    def __iter__(self):
        if self.step >= len(self):  # the previous loop stopped right after the last batch
            self._finish_epoch()
        while self.step < len(self):
            yield self._next()
        self._finish_epoch()

    def reset(self) -> None:
        """End the current epoch now (its remaining images are read and dropped); the next
        iteration starts a new epoch."""
        self._finish_epoch()

    def _finish_epoch(self) -> None:
        while self.step < self._reader_batches:
            self._run_source()
            self.step += 1
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
        print(f"fastpolicy: DALI failed to read a batch ({message[-1] if message else error}); "
              f"decoding all {len(self.images_list)} files to find the bad ones …")
        try:
            check_files(self.images_list, verify="decode", on_bad="raise", workers=max(2, self.num_threads))
        except BadImageError as bad:
            raise BadImageError(bad.bad, hint="pass on_bad='skip' with verify='decode' to drop them") from error
        raise error

    def _next(self) -> Batch:
        outputs = self._run_source()
        n_valid = min(self.batch_size, self.shard_size - self.step * self.batch_size)
        copies = [self._to_torch(out)[:n_valid] for out in outputs[:self.M]]
        labels = torch.as_tensor(np.array(outputs[self.M].as_tensor()).reshape(-1)[:n_valid].astype(np.int64))
        indices = self._indices(outputs[self.M + 1])[:n_valid]
        images = torch.cat(copies)
        params = self._sample(n_valid)
        if self.backend in ("cupy", "native", "emulated"):
            finished = self._apply_kernels(images, params)
        else:
            if params is not None and np.any(params.op != NO_OP):
                images = self._apply(images, params)
            finished = self._finish_images(images)
        batch = Batch(finished, labels.repeat(self.M).to(images.device),
                      torch.arange(self.M, device=images.device).repeat_interleave(n_valid),
                      version=self.version, params=params, indices=indices, epoch=self.epoch, step=self.step)
        self.step += 1
        return batch

    def _indices(self, output) -> np.ndarray:
        if self.images_list is None:
            return np.array(output.as_tensor()).reshape(-1).astype(np.int64)
        return np.array([self._file_index[bytes(np.array(output[i])).decode()] for i in range(len(output))])

    def _to_torch(self, tensor_list) -> torch.Tensor:
        if self.device == "gpu":
            from nvidia.dali.plugin.pytorch import feed_ndarray

            dense = tensor_list.as_tensor()
            out = torch.empty(dense.shape(), dtype=torch.uint8, device="cuda")
            feed_ndarray(dense, out, cuda_stream=torch.cuda.current_stream())
            return out
        return torch.from_numpy(np.array(tensor_list.as_tensor()))

    def _apply(self, images: torch.Tensor, params: PolicyParams) -> torch.Tensor:
        stage = self._policy_stage()
        if self.backend == "numpy":
            return torch.from_numpy(stage.apply_batch(images.cpu().numpy(), params, fill=self.fill)).to(images.device)
        stage.feed(images if self.device == "gpu" else images.numpy(), params)
        return self._to_torch(stage.run())

    def _apply_kernels(self, images: torch.Tensor, params: PolicyParams | None) -> torch.Tensor:
        """The fused kernels: policy, normalization and NHWC → NCHW in one pass."""
        output = "float32" if self.output == "float" else "uint8"
        norm = {"mean": self._pixel_mean, "inv_std": self._pixel_inv_std} if output == "float32" else {}
        if self.backend == "cupy":
            from ..backends.kernel_stage import apply_torch

            out = apply_torch(images, params, output=output, fill=self.fill, **norm)
        else:
            out = torch.from_numpy(self._policy_stage().apply(images.numpy(), params, output=output, fill=self.fill,
                                                              **norm))
        return out if output == "float32" else out.permute(0, 3, 1, 2).contiguous()

    def _finish_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC → NCHW, normalized in NHWC order (contiguous, so fast) before the transpose."""
        if self.output == "float":
            images = images.float().sub_(self._mean).mul_(self._inv_std)
        return images.permute(0, 3, 1, 2).contiguous()

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
            kind, count = "arrays", len(self._images)
            digest.update(str(self._images.shape).encode())
            digest.update(np.ascontiguousarray(self._images).data)
            digest.update(np.ascontiguousarray(self._labels, dtype=np.int64).data)
        return {"kind": kind, "images": count, "sha256": digest.hexdigest()[:16]}


    def state_dict(self) -> dict:
        """Everything needed to continue with the same batches: position, RNG, policies, DALI state."""
        policies = None if self._policies is None else [p.to_dict() for p in self._policies]
        return {"epoch": self.epoch, "step": self.step, "version": self.version,
                "rng": self._rng.bit_generator.state, "policies": policies,
                "source": base64.b64encode(self._source.checkpoint()).decode("ascii"),
                "shard": [self.shard_id, self.num_shards], "batch_size": self.batch_size, "M": self.M}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (same data, batch size, M and sharding)."""
        for key in ("batch_size", "M"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state has {key}={state[key]}, this loader {getattr(self, key)}")
        if list(state["shard"]) != [self.shard_id, self.num_shards]:
            raise ValueError(f"state is of shard {state['shard']}, this loader {[self.shard_id, self.num_shards]}")
        self.epoch, self.step = state["epoch"], state["step"]
        position = self.epoch * self._reader_batches + self.step
        self._source = self._build_source(base64.b64decode(state["source"]), position=position)
        self._rng.bit_generator.state = state["rng"]
        if state["policies"] is None:
            self._policies = None
        else:
            self._policies = [AWSDistribution.from_dict(p) if "theta1" in p else Policy.from_dict(p)
                              for p in state["policies"]]
        self.version = state["version"]
