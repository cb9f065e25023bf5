"""Snapshots of fitted objects and the pickle5 model blob they become: round trips, isolation, damage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlkeep.errors import InvalidInputError
from mlkeep.integrations._snapshot import ModelSnapshot, frozen_copy
from mlkeep.tracking.models import PICKLE5_MAGIC, deserialize

arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=6),
)
values = st.dictionaries(st.text(max_size=5), st.one_of(arrays, st.integers(), st.text(max_size=8)), max_size=6)


@settings(max_examples=60, deadline=None)
@given(values)
def test_a_snapshot_blob_loads_back_equal(obj: dict) -> None:
    snapshot = ModelSnapshot(obj)
    blob = snapshot.payload()
    assert blob.startswith(PICKLE5_MAGIC)
    for loaded in (deserialize("sklearn", blob), snapshot.load()):
        assert loaded.keys() == obj.keys()
        for key, value in obj.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(loaded[key], value)
                assert loaded[key].dtype == value.dtype and loaded[key].flags.writeable
            else:
                assert loaded[key] == value


def test_changes_after_the_snapshot_do_not_reach_it() -> None:
    weights = np.arange(1000.0)
    snapshot = ModelSnapshot({"coef": weights})
    weights[:] = -1.0  # an in-place update, as a warm start or partial_fit makes
    np.testing.assert_array_equal(snapshot.load()["coef"], np.arange(1000.0))
    np.testing.assert_array_equal(deserialize("sklearn", snapshot.payload())["coef"], np.arange(1000.0))


def test_plain_pickles_still_load() -> None:
    import pickle

    assert deserialize("sklearn", pickle.dumps({"a": np.ones(3)}))["a"].sum() == 3


def test_a_damaged_blob_is_refused_with_a_clear_error() -> None:
    blob = ModelSnapshot({"a": np.ones(8)}).payload()
    with pytest.raises(InvalidInputError, match="header says"):
        deserialize("sklearn", blob[:-3])
    header_start = len(PICKLE5_MAGIC) + 8
    with pytest.raises(InvalidInputError, match="damaged header"):
        deserialize("sklearn", blob[:header_start] + b"{" + blob[header_start + 1:])


def test_frozen_copy_detaches_data_from_the_caller() -> None:
    nested = [[1, 2], [3, 4]]
    array = np.ones(4)
    copies = frozen_copy(nested), frozen_copy(array)
    nested[0][0], array[0] = 99, 99.0
    assert copies[0] == [[1, 2], [3, 4]] and copies[1][0] == 1.0
    assert frozen_copy("a/path.csv") == "a/path.csv" and frozen_copy(None) is None
