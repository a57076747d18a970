"""The enlarged-batch loader: :class:`PolicyDALILoader` (see :mod:`.loader`)."""

from .loader import Batch, PolicyDALILoader

__all__ = ["Batch", "PolicyDALILoader"]
