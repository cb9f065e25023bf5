"""Lineage: the provenance graph of datasets, runs, models, predictions and evaluations.

Edges are written to the `links` table when the entity that creates them is
logged (src came before dst). A query walks that table breadth-first, one
indexed query per level, so its cost grows with the answer, not the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.metadata import Database
from mlkeep.metadata.tables import commits, datasets, evaluations, links, model_versions, models, predictions, runs
from mlkeep.metadata.upsert import insert_ignore
from mlkeep.tracking.entities import Entity

KINDS = {
    "dataset": datasets,
    "run": runs,
    "model": models,
    "prediction": predictions,
    "evaluation": evaluations,
    "commit": commits,
    "model_version": model_versions,
}


@dataclass(frozen=True)
class Link(Entity):
    src: str
    dst: str
    relation: str


@dataclass(frozen=True)
class Node(Entity):
    id: str
    kind: str
    name: str


@dataclass(frozen=True)
class LineageGraph(Entity):
    """The nodes reached from `root` and the edges walked, each with its depth."""

    root: str
    direction: str
    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    depth: dict[str, int] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Node]:
        """Nodes of one kind (e.g. every `model` downstream of a faulty dataset), root excluded."""
        return [n for n in self.nodes.values() if n.kind == kind and n.id != self.root]

    def children(self, node_id: str) -> list[tuple[str, str]]:
        """(neighbour id, relation) pairs one step further from the root."""
        if self.direction == "down":
            return [(l.dst, l.relation) for l in self.links if l.src == node_id]
        return [(l.src, l.relation) for l in self.links if l.dst == node_id]


def add_links(conn: Connection, edges: Iterable[tuple[str | None, str, str | None, str, str]]) -> None:
    """Record edges (src_id, src_kind, dst_id, dst_kind, relation) in the caller's transaction.

    An edge with either end None (an optional link the entity does not have) is skipped.
    """
    rows = [
        {"src_id": s, "src_kind": sk, "dst_id": d, "dst_kind": dk, "relation": r}
        for s, sk, d, dk, r in edges
        if s is not None and d is not None
    ]
    insert_ignore(conn, links, rows)


def kind_of(conn: Connection, entity_id: str) -> str:
    for kind, table in KINDS.items():
        if conn.execute(select(table.c.id).where(table.c.id == entity_id)).first() is not None:
            return kind
    raise NotFoundError(f"No dataset, run, model, prediction, evaluation, commit or intermediate has id {entity_id!r}.")


def lineage(db: Database, entity_id: str, direction: str = "up", depth: int | None = None) -> LineageGraph:
    """Walk `direction` ("up": what went into it; "down": what came out of it) up to `depth` steps."""
    if direction not in ("up", "down"):
        raise InvalidInputError(f"Lineage direction must be 'up' or 'down', not {direction!r}.")
    if depth is not None and depth < 0:
        raise InvalidInputError("Lineage depth must be a non-negative number of steps.")
    near, far = (links.c.dst_id, links.c.src_id) if direction == "up" else (links.c.src_id, links.c.dst_id)
    with db.connect() as conn:
        kinds = {entity_id: kind_of(conn, entity_id)}
        graph = LineageGraph(root=entity_id, direction=direction, depth={entity_id: 0})
        frontier, level = [entity_id], 0
        while frontier and (depth is None or level < depth):
            level += 1
            rows = conn.execute(select(links).where(near.in_(frontier))).all()
            nxt = []
            for r in rows:
                graph.links.append(Link(src=r.src_id, dst=r.dst_id, relation=r.relation))
                other = r.src_id if direction == "up" else r.dst_id
                kinds[other] = r.src_kind if direction == "up" else r.dst_kind
                if other not in graph.depth:
                    graph.depth[other] = level
                    nxt.append(other)
            frontier = nxt
        graph.nodes.update(_names(conn, kinds))
    return graph


def _names(conn: Connection, kinds: dict[str, str]) -> dict[str, Node]:
    out = {}
    by_kind: dict[str, list[str]] = {}
    for i, k in kinds.items():
        by_kind.setdefault(k, []).append(i)
    for kind, ids in by_kind.items():
        table = KINDS[kind]
        label = table.c.name if "name" in table.c else table.c.message
        for row in conn.execute(select(table.c.id, label.label("name")).where(table.c.id.in_(ids))).all():
            out[row.id] = Node(id=row.id, kind=kind, name=row.name or kind)
    return out

