"""The enlarged-batch loader: :class:`PolicyDALILoader` (see :mod:`.loader`) and its grouped
settings (:mod:`.settings`)."""

from .batch import Batch
from .loader import PolicyDALILoader
from .settings import Augment, FileChecks, Output, Pipeline, Sharding

__all__ = ["Augment", "Batch", "FileChecks", "Output", "Pipeline", "PolicyDALILoader", "Sharding"]
