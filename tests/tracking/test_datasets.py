"""Datasets: fingerprints, schema, statistics, histograms, versions, storage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlkeep.errors import DatasetError, NotFoundError
from mlkeep.store import Store


def test_same_data_is_one_dataset_and_new_content_a_new_version(store: Store, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    with store.start_run("iris") as run:
        a = run.log_dataset(X, name="iris", targets=y)
        b = run.log_dataset(X.copy(), name="iris", targets=y.copy())
        c = run.log_dataset(X.iloc[:100], name="iris", targets=y.iloc[:100], derived_from=a)
    assert a.id == b.id and a.version == "1"
    assert c.id != a.id and c.version == "2" and c.derived_from_id == a.id
    assert [d.id for d in store.list_datasets("iris")] == [a.id, c.id]


def test_frame_schema_statistics_histograms(store: Store, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    with store.start_run("iris") as run:
        ds = run.log_dataset(X, name="iris", targets=y)
    assert ds.num_rows == 150
    assert ds.columns[0] == {"name": "sepal length (cm)", "typing": "DOUBLE"}
    assert ds.columns[-1] == {"name": "target", "typing": "LONG"}
    st = ds.statistics["petal width (cm)"]
    assert st["count"] == 150 and st["nulls"] == 0
    assert st["mean"] == pytest.approx(X["petal width (cm)"].mean())
    assert st["min"] == X["petal width (cm)"].min() and st["max"] == X["petal width (cm)"].max()
    h = ds.histograms["petal width (cm)"]
    assert sum(h["counts"]) == 150 and len(h["edges"]) == 11
    assert ds.targets == "target"
    loaded = store.load_dataset(ds.id)
    pd.testing.assert_frame_equal(loaded.drop(columns="target"), X)


def test_numpy_arrays_with_nulls_and_targets(store: Store, digits) -> None:  # type: ignore[no-untyped-def]
    X, y = digits
    Xn = X.astype(float).copy()
    Xn[0, 3] = np.nan
    with store.start_run("digits") as run:
        ds = run.log_dataset(Xn, name="digits-nan", targets=y)
    assert len(ds.columns) == 65 and ds.statistics["x3"]["nulls"] == 1
    data, targets = store.load_dataset(ds.id)
    assert np.array_equal(data, Xn, equal_nan=True) and np.array_equal(targets, y)


def test_files_csv_and_opaque(store: Store, tmp_path: Path, iris) -> None:  # type: ignore[no-untyped-def]
    X, _ = iris
    csv = tmp_path / "iris.csv"
    X.to_csv(csv, index=False)
    blob = tmp_path / "notes.bin"
    blob.write_bytes(b"\x00\x01binary")
    with store.start_run("files") as run:
        a = run.log_dataset(csv)
        b = run.log_dataset(blob, name="notes")
    assert a.name == "iris.csv" and a.num_rows == 150 and a.location == csv.resolve().as_uri()
    assert b.columns == [{"name": "content", "typing": "UNKNOWN"}]
    assert store.load_dataset(b.id) == b"\x00\x01binary"


def test_bad_datasets_raise_and_store_nothing(store: Store, tmp_path: Path) -> None:
    with store.start_run("bad") as run:
        with pytest.raises(DatasetError):
            run.log_dataset(np.array([object(), object()]))
        with pytest.raises(DatasetError):
            run.log_dataset(np.arange(5), targets=np.arange(4))
        with pytest.raises(DatasetError):
            run.log_dataset(tmp_path / "missing.csv")
        with pytest.raises(NotFoundError):
            run.log_dataset(np.arange(5), derived_from="nope")
    assert store.list_datasets() == []


def test_loading_a_metadata_only_imported_dataset_says_its_content_was_not_imported(
    store: Store, tmp_path: Path
) -> None:
    doc = {"id": "other-tool-ds", "name": "survey", "location": "s3://bucket/survey.csv", "creationTime": 1}
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "other-tool-ds.json").write_text(json.dumps(doc))
    store.import_(tmp_path)
    assert store.get_dataset("other-tool-ds").name == "survey"
    with pytest.raises(NotFoundError, match="content was not imported"):
        store.load_dataset("other-tool-ds")
