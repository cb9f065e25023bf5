"""Model intermediates: the outputs of every pipeline stage and network layer, kept for diagnosis.

`Intermediates(db, objects, tensors)` (exposed as `store.intermediates`)
captures them (`capture`: hooks on PyTorch modules, stage by stage through
scikit-learn pipelines), shrinks them (`codecs`: exact, float16, k-bit,
threshold, pooling; exact de-duplication by content hash; near-identical
chunks found by MinHash + LSH in `dedup` and stored as deltas against each
other in `delta`, or reused within a tolerance), stores them as column
chunks per block of rows (`layout`, `storage`; `gc` tells `mlkeep gc` which
objects are still used), decides per intermediate whether to store it or
recompute it from its model version and dataset (`costmodel`, `recompute`),
and answers diagnostic queries (`queries`: get, top-k, kNN, per-group
statistics, differences, correlation, CKA / SVCCA similarity).

Importing this package loads numpy but never torch or scikit-learn.
"""

from mlkeep.intermediates.api import Intermediates
from mlkeep.intermediates.codecs import Codec, Pool, parse_codec
from mlkeep.intermediates.costmodel import Costs, Decision
from mlkeep.intermediates.entities import Intermediate

__all__ = ["Codec", "Costs", "Decision", "Intermediate", "Intermediates", "Pool", "parse_codec"]
