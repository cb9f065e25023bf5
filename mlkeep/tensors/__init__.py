"""The tensor store: chunked, content-addressed, delta-compressed, verified tensor trees.

The layer under model versioning. `TensorStore(objects)` writes a mapping of
name -> tensor as a tree object (`put_tree`, optionally against a parent
tree for deltas) and reads it back bit for bit (`get_tree`), verifying every
chunk. Modules: `dtypes` (what is accepted), `chunks` (cutting, hashing),
`codecs` (byte planes, xor/sub deltas, object format), `manifest` and `tree`
(the JSON objects), `packs` (small chunks sharing one object), `planner` (the
cost model), `blobs` (chunk object IO and cache), `store` (the API), `pytorch`
(state_dict adapter; imports torch lazily).
"""

from mlkeep.tensors.dtypes import RawTensor, TensorLike, supported_dtypes
from mlkeep.tensors.manifest import ChunkRef, TensorManifest
from mlkeep.tensors.planner import StoragePolicy
from mlkeep.tensors.store import RecipeTree, TensorInfo, TensorStore, TreeId, TreeInfo, VerifyReport, WriteStats

__all__ = [
    "ChunkRef",
    "RawTensor",
    "RecipeTree",
    "StoragePolicy",
    "TensorInfo",
    "TensorLike",
    "TensorManifest",
    "TensorStore",
    "TreeId",
    "TreeInfo",
    "VerifyReport",
    "WriteStats",
    "supported_dtypes",
]
