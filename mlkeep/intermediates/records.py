"""The `intermediates` table: insert, find, list, and the few fields that change.

A query looks its record up by id and then counts itself (and records what
it measured) on it: two statements on every query, so both run as statements
compiled once per dialect on the driver's cursor (`Database.prepared`), not
through SQLAlchemy's per-execution machinery, which cost more than the read
of a narrow layer. The count is an `n_queries = n_queries + 1` in the
database itself: concurrent processes never lose one, and the cost model of
a later process sees them all.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Executable, bindparam, literal_column, select, update

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


_Row = namedtuple("_Row", [c.name for c in table.columns])  # type: ignore[misc]


def _by_id(_dialect: str) -> tuple[Executable, Sequence[str]]:
    return select(table).where(table.c.id == bindparam("b_id")), ("b_id",)


def _count(_dialect: str) -> tuple[Executable, Sequence[str]]:
    count = table.c.n_queries + literal_column("1")  # a literal, not a parameter: callers pass the id only
    return update(table).where(table.c.id == bindparam("b_id")).values(n_queries=count), ("b_id",)


def _count_with_costs(_dialect: str) -> tuple[Executable, Sequence[str]]:
    stmt = update(table).where(table.c.id == bindparam("b_id")).values(
        n_queries=table.c.n_queries + literal_column("1"), t_rerun=bindparam("b_t_rerun"), t_read=bindparam("b_t_read"),
        document=bindparam("b_document"))
    return stmt, ("b_t_rerun", "b_t_read", "b_document", "b_id")


def get(db: Database, ref: Intermediate | str) -> Intermediate:
    """An intermediate by entity, id, unique id prefix (≥ 4 characters) or unique name."""
    key = ref.id if isinstance(ref, Intermediate) else ref
    if not isinstance(key, str) or not key:
        raise InvalidInputError("Name an intermediate by its id or name.")
    with db.connect() as conn:
        cur = db.prepared(_by_id).execute(conn, (key,))
        values = cur.fetchone()
        cur.close()
        row: Any = _Row(*values) if values is not None else None
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


def set_costs(db: Database, inter: Intermediate, costs: Costs) -> None:
    """Store new measured figures (and the t_rerun / t_read they imply for all rows)."""
    doc = dict(inter.document, costs=costs.to_dict())
    values: dict[str, Any] = {"t_rerun": costs.t_rerun(), "t_read": costs.t_read(),
                              "document": json.dumps(doc, sort_keys=True)}
    with db.begin() as conn:
        conn.execute(update(table).where(table.c.id == inter.id).values(**values))


def count_query(db: Database, inter: Intermediate, costs: Costs | None = None) -> None:
    """Count one more query of the intermediate (n_queries += 1 in the database, so no concurrent query is
    lost), and with `costs`, store those figures too, in the same statement."""
    with db.begin() as conn:
        if costs is None:
            db.prepared(_count).execute(conn, (inter.id,)).close()
            return
        doc = json.dumps(dict(inter.document, costs=costs.to_dict()), sort_keys=True)
        db.prepared(_count_with_costs).execute(conn, (costs.t_rerun(), costs.t_read(), doc, inter.id)).close()


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


def read_rates(db: Database, latest: int = 64) -> list[tuple[str, float, float]]:
    """(codec, read_rate, t_open) of the store's latest `latest` intermediates whose read figures a query
    measured: the throughput a new intermediate's estimate starts from."""
    query = (select(table.c.codec, table.c.document)  # documents are json.dumps(sort_keys=True): this spelling
             .where(table.c.document.contains('"read_measured": true'))
             .order_by(table.c.creation_time.desc()).limit(latest))
    with db.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for codec, document in rows:
        costs = json.loads(document).get("costs", {})
        if costs.get("read_measured"):
            out.append((codec, float(costs["read_rate"]), float(costs["t_open"])))
    return out


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
