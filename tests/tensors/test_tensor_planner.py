"""The recovery planner's cost model: chain limits under the read budget, per-chunk choice."""

from __future__ import annotations

import pytest

from mlkeep.errors import InvalidInputError
from mlkeep.tensors.manifest import ChunkRef
from mlkeep.tensors.planner import Candidate, StoragePolicy, chain_limit, choose

MB = 1 << 20


def ref(depth: int, nbytes: int = MB) -> ChunkRef:
    return ChunkRef("a" * 64, "b" * 64, "full" if depth == 0 else "sub", None if depth == 0 else "c" * 64, "c" * 64, depth, nbytes // 2, nbytes)


def test_a_few_changed_chunks_may_chain_on_their_parent() -> None:
    policy = StoragePolicy(max_chain_depth=8)
    unchanged = [ref(0) for _ in range(90)]
    changed = [(MB, ref(5)) for _ in range(7)]
    assert chain_limit(policy, unchanged, changed) == 8


def test_a_full_update_gets_star_deltas_and_a_tight_budget_none() -> None:
    changed = [(MB, ref(1)) for _ in range(90)]
    assert chain_limit(StoragePolicy(), [], changed) == 1
    assert chain_limit(StoragePolicy(max_read_amplification=1.5), [], changed) == 0
    assert chain_limit(StoragePolicy(max_chain_depth=0), [], changed) == 0
    assert chain_limit(StoragePolicy(encodings=("full",)), [], changed) == 0


def test_choose_takes_the_cheapest_allowed_candidate() -> None:
    policy = StoragePolicy(min_saving=0.1, read_weight=0.02)
    full = Candidate("full", None, 0, 800_000)
    star = Candidate("sub", "r", 1, 600_000)
    chain = Candidate("sub", "p", 4, 560_000)  # 40 kB smaller, 3 more decodes cost 63 kB
    assert choose(policy, [full, star, chain], MB, limit=8) is star
    assert choose(policy, [full, star, chain], MB, limit=0) is full
    cheap_chain = Candidate("sub", "p", 2, 300_000)
    assert choose(policy, [full, star, cheap_chain], MB, limit=8) is cheap_chain
    barely = Candidate("xor", "r", 1, 760_000)  # saves 5 % < min_saving
    assert choose(policy, [full, barely], MB, limit=8) is full


@pytest.mark.parametrize(
    "kwargs",
    [{"chunk_bytes": 8}, {"max_chain_depth": -1}, {"min_saving": 1.0}, {"max_read_amplification": 0.5}, {"encodings": ("zip",)}],
)
def test_bad_policies_are_refused(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInputError):
        StoragePolicy(**kwargs)
