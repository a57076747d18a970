"""The enlarged-batch loader: :class:`PolicyDALILoader` (see :mod:`.loader`), its grouped
settings (:mod:`.settings`) and sharded datasets (:mod:`.shards`: :class:`ShardDataset`
with :class:`ShardKeys`; bad samples raise :class:`BadShardError`)."""

from ..data.shards import BadShardError, ShardKeys, list_shards, write_shards
from .batch import Batch
from .loader import PolicyDALILoader
from .settings import Augment, FileChecks, Output, Pipeline, Sharding
from .shards import ShardDataset

__all__ = [
    "Augment",
    "BadShardError",
    "Batch",
    "FileChecks",
    "Output",
    "Pipeline",
    "PolicyDALILoader",
    "ShardDataset",
    "ShardKeys",
    "Sharding",
    "list_shards",
    "write_shards",
]
