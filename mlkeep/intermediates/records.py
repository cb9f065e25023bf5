"""The `intermediates` table: insert, find, list, and the few fields that change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.intermediates.costmodel import Costs
from mlkeep.intermediates.entities import Intermediate
from mlkeep.metadata import Database
from mlkeep.metadata.tables import intermediates as table
from mlkeep.metadata.tables import links
from mlkeep.tracking.lineage import add_links


def insert(db: Database, items: Sequence[Intermediate]) -> None:
    """Insert intermediates and their lineage (commit → intermediate, dataset → intermediate) in one transaction."""
    rows = [_row(i) for i in items]
    with db.begin() as conn:
        conn.execute(table.insert(), rows)
        add_links(conn, [e for i in items for e in (
            (i.commit_id, "commit", i.id, "intermediate", "computed"),
            (i.dataset_id, "dataset", i.id, "intermediate", "computed_on"),
        )])


def get(db: Database, ref: Intermediate | str) -> Intermediate:
    """An intermediate by entity, id, unique id prefix (≥ 4 characters) or unique name."""
    key = ref.id if isinstance(ref, Intermediate) else ref
    if not isinstance(key, str) or not key:
        raise InvalidInputError("Name an intermediate by its id or name.")
    with db.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == key)).first()
        if row is None:
            found = conn.execute(select(table).where(table.c.name == key).limit(2)).all()
            if not found and len(key) >= 4:
                found = conn.execute(select(table).where(table.c.id.startswith(key)).limit(2)).all()
            if len(found) > 1:
                raise InvalidInputError(f"{key!r} names several intermediates; give its id.")
            row = found[0] if found else None
    if row is None:
        raise NotFoundError(f"No intermediate is called {key!r}. List them with `mlkeep intermediates ls`.")
    return entity(row)


def list_(db: Database, *, capture_id: str | None = None, commit_id: str | None = None, layer: str | None = None,
          dataset_id: str | None = None, repository: str | None = None) -> list[Intermediate]:
    """Intermediates matching every given filter, oldest first."""
    query = select(table).order_by(table.c.creation_time, table.c.name)
    for column, value in ((table.c.capture_id, capture_id), (table.c.commit_id, commit_id), (table.c.layer, layer),
                          (table.c.dataset_id, dataset_id), (table.c.repository, repository)):
        if value is not None:
            query = query.where(column == value)
    with db.connect() as conn:
        return [entity(r) for r in conn.execute(query).all()]


def delete(db: Database, inter: Intermediate) -> None:
    """Remove an intermediate's record and its lineage links in one transaction."""
    with db.begin() as conn:
        conn.execute(links.delete().where((links.c.src_id == inter.id) | (links.c.dst_id == inter.id)))
        conn.execute(table.delete().where(table.c.id == inter.id))


def set_costs(db: Database, inter: Intermediate, costs: Costs, *, queried: bool = False) -> None:
    """Store new measured figures (and the t_rerun / t_read they imply for all rows); with `queried`,
    also count one more query (n_queries += 1, atomically), in the same statement."""
    doc = dict(inter.document, costs=costs.to_dict())
    values: dict[str, Any] = {"t_rerun": costs.t_rerun(), "t_read": costs.t_read(),
                              "document": json.dumps(doc, sort_keys=True)}
    if queried:
        values["n_queries"] = table.c.n_queries + 1
    with db.begin() as conn:
        conn.execute(update(table).where(table.c.id == inter.id).values(**values))


def set_storage(db: Database, inter: Intermediate, *, status: str, manifest: str | None = None,
                stored_bytes: int | None = None, new_bytes: int | None = None) -> None:
    """Mark an intermediate stored (with its manifest) or virtual."""
    values: dict[str, Any] = {"status": status, "manifest": manifest}
    if stored_bytes is not None:
        values["stored_bytes"] = stored_bytes
    if new_bytes is not None:
        values["new_bytes"] = new_bytes
    with db.begin() as conn:
        conn.execute(update(table).where(table.c.id == inter.id).values(**values))


def costs_of(inter: Intermediate) -> Costs:
    return Costs.from_dict(inter.document["costs"])


def _row(i: Intermediate) -> dict[str, Any]:
    doc = dict(i.document, row_shape=list(i.row_shape), framework=i.framework)
    return {
        "id": i.id, "capture_id": i.capture_id, "name": i.name, "layer": i.layer, "repository": i.repository,
        "commit_id": i.commit_id, "dataset_id": i.dataset_id, "codec": i.codec, "status": i.status,
        "n_rows": i.n_rows, "n_cols": i.n_cols, "raw_bytes": i.raw_bytes, "stored_bytes": i.stored_bytes,
        "new_bytes": i.new_bytes, "manifest": i.manifest, "n_queries": i.n_queries, "t_rerun": i.t_rerun,
        "t_read": i.t_read, "creation_time": i.creation_time, "document": json.dumps(doc, sort_keys=True),
    }


def entity(row: Any) -> Intermediate:
    doc = json.loads(row.document)
    return Intermediate(
        id=row.id, capture_id=row.capture_id, name=row.name, layer=row.layer, repository=row.repository,
        commit_id=row.commit_id, dataset_id=row.dataset_id, codec=row.codec, status=row.status, n_rows=row.n_rows,
        n_cols=row.n_cols, row_shape=tuple(doc.get("row_shape", [row.n_cols])), raw_bytes=row.raw_bytes,
        stored_bytes=row.stored_bytes, new_bytes=row.new_bytes, manifest=row.manifest, n_queries=row.n_queries,
        t_rerun=row.t_rerun, t_read=row.t_read, creation_time=row.creation_time, framework=doc.get("framework", ""),
        document=doc,
    )
