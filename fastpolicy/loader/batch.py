"""What the loader yields: :class:`Batch`, the images, labels and policy ids with what produced them."""

from __future__ import annotations


class Batch(tuple):
    """``(images, labels, policy_ids)``, unpackable as a 3-tuple, with what produced it.

    Attributes:
        images: torch (B, C, H, W) of the loader's output type (normalized floats, or
            uint8 pixels) and layout (contiguous, or ``torch.channels_last``).
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
