"""Datasets: logged once per distinct content, versioned by name, linked in lineage."""

from __future__ import annotations

import io
import json
from typing import Any

from sqlalchemy import Connection, func, select

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata import Database
from mlkeep.metadata.tables import datasets
from mlkeep.metadata.upsert import insert_for
from mlkeep.objects import ObjectStore
from mlkeep.tracking.describe import Description, describe
from mlkeep.tracking.entities import Dataset
from mlkeep.tracking.lineage import add_links

OBJECT_PREFIX = "mlkeep://objects/"


def log_dataset(
    db: Database,
    objects: ObjectStore,
    data: Any,
    *,
    name: str | None = None,
    targets: Any = None,
    derived_from: Dataset | str | None = None,
    run_id: str | None = None,
    context: str = "input",
) -> Dataset:
    """The Dataset for `data`: the existing one when this content was logged before, else a new one.

    The content is stored in the object store (deduplicated by hash); a run that
    logs it is linked to it as an input.
    """
    if isinstance(data, Dataset):
        dataset = data
    else:
        desc = describe(data, targets)
        oid = objects.put_bytes(desc.payload) if desc.payload is not None else objects.put_file(desc.path)[0]  # type: ignore[arg-type]
        dataset = _record(db, desc, oid, name, derived_from)
    if run_id is not None:
        with db.begin() as conn:
            add_links(conn, [(dataset.id, "dataset", run_id, "run", context)])
    return dataset


def resolve(db: Database, objects: ObjectStore, ref: Dataset | str | Any, run_id: str | None = None) -> Dataset:
    """A Dataset from an entity, an id, or raw data (which gets logged)."""
    if isinstance(ref, Dataset):
        return ref
    if isinstance(ref, str):
        try:
            return get_dataset(db, ref)
        except NotFoundError:
            pass
    return log_dataset(db, objects, ref, run_id=run_id)


def get_dataset(db: Database, dataset_id: str) -> Dataset:
    with db.connect() as conn:
        row = conn.execute(select(datasets).where(datasets.c.id == dataset_id)).first()
    if row is None:
        raise NotFoundError(f"No dataset with id {dataset_id!r}. List them with `mlkeep datasets`.")
    return _entity(row)


def list_datasets(db: Database, name: str | None = None) -> list[Dataset]:
    query = select(datasets).order_by(datasets.c.creation_time)
    if name is not None:
        query = query.where(datasets.c.name == name)
    with db.connect() as conn:
        return [_entity(r) for r in conn.execute(query).all()]


def load_dataset(db: Database, objects: ObjectStore, dataset_id: str, *, document: dict[str, Any] | None = None) -> Any:
    """The stored content: an array (or `(X, y)`), a DataFrame, or a file's bytes. `document`: its
    `dataset_document`, when the caller has it already (a large dataset's is dear to parse).

    Raises NotFoundError for an unknown id, and for a dataset imported as
    metadata only (its document names no content object).
    """
    doc = dataset_document(db, dataset_id) if document is None else document
    if not doc.get("object"):
        raise NotFoundError(
            f"Dataset {dataset_id} has no stored content: it was imported as metadata and its content was not imported."
        )
    raw = objects.get_bytes(doc["object"])
    fmt = doc.get("format")
    if fmt == "npz":
        import numpy as np

        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            return (npz["data"], npz["targets"]) if "targets" in npz else npz["data"]
    if fmt == "parquet" and doc.get("kind") == "frame":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(raw))
    return raw


def dataset_document(db: Database, dataset_id: str) -> dict[str, Any]:
    """The stored description of a dataset, including the id of its content object."""
    with db.connect() as conn:
        doc = conn.execute(select(datasets.c.document).where(datasets.c.id == dataset_id)).scalar()
    if doc is None:
        raise NotFoundError(f"No dataset with id {dataset_id!r}. List them with `mlkeep datasets`.")
    return json.loads(doc)  # type: ignore[no-any-return]


def insert_dataset(conn: Connection, dataset: Dataset, document: dict[str, Any]) -> None:
    """Insert a Dataset row and its derived_from link in the caller's transaction, keeping its id.

    Import uses this; the fingerprint must be new (the unique index raises otherwise).
    """
    conn.execute(
        datasets.insert(),
        [
            {
                "id": dataset.id, "name": dataset.name, "fingerprint": dataset.fingerprint,
                "version": dataset.version, "location": dataset.location, "derived_from_id": dataset.derived_from_id,
                "creation_time": dataset.creation_time, "document": json.dumps(document, sort_keys=True),
            }
        ],
    )
    add_links(conn, [(dataset.derived_from_id, "dataset", dataset.id, "dataset", "derived_from")])


def _record(db: Database, desc: Description, oid: str, name: str | None, derived_from: Dataset | str | None) -> Dataset:
    parent = derived_from.id if isinstance(derived_from, Dataset) else derived_from
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidInputError("A dataset name must be a non-empty string.")
    name = name or (desc.path.name if desc.path else f"dataset-{desc.fingerprint[:8]}")
    with db.begin() as conn:
        found = conn.execute(select(datasets).where(datasets.c.fingerprint == desc.fingerprint)).first()
        if found is not None:
            return _entity(found)
        if parent is not None and conn.execute(select(datasets.c.id).where(datasets.c.id == parent)).first() is None:
            raise NotFoundError(f"derived_from names no dataset: {parent!r}.")
        version = conn.execute(select(func.count()).where(datasets.c.name == name)).scalar_one() + 1
        ds_id = new_id()
        location = str(desc.path.as_uri()) if desc.path else OBJECT_PREFIX + oid
        document = {
            "kind": desc.kind, "format": desc.format, "object": oid, "num_rows": desc.num_rows,
            "columns": desc.columns, "statistics": desc.statistics, "histograms": desc.histograms,
            "targets": desc.targets,
        }
        row = {
            "id": ds_id, "name": name, "fingerprint": desc.fingerprint, "version": str(version),
            "location": location, "derived_from_id": parent, "creation_time": now_ms(),
            "document": json.dumps(document, sort_keys=True),
        }
        conn.execute(insert_for(conn)(datasets).on_conflict_do_nothing(index_elements=["fingerprint"]), [row])
        add_links(conn, [(parent, "dataset", ds_id, "dataset", "derived_from")])
        stored = conn.execute(select(datasets).where(datasets.c.fingerprint == desc.fingerprint)).one()
    return _entity(stored)


def _entity(row: Any) -> Dataset:
    doc = json.loads(row.document)
    return Dataset(
        id=row.id, name=row.name, fingerprint=row.fingerprint, version=row.version, location=row.location,
        creation_time=row.creation_time, derived_from_id=row.derived_from_id, num_rows=doc.get("num_rows", 0),
        columns=doc.get("columns", []), statistics=doc.get("statistics", {}), histograms=doc.get("histograms", {}),
        targets=doc.get("targets"),
    )
