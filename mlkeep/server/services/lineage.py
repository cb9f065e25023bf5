"""Lineage graphs, pruned for a scoped token to the runs of its experiment and what they logged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlkeep.access import Principal
from mlkeep.errors import PermissionDeniedError
from mlkeep.server.services.access import dataset_visible, sees

if TYPE_CHECKING:
    from mlkeep.store import Store
    from mlkeep.tracking.lineage import LineageGraph


def lineage(store: Store, principal: Principal, entity_id: str, direction: str = "up",
            depth: int | None = None) -> LineageGraph:
    """`Store.lineage`, pruned for a scoped token."""
    principal.require("read")
    graph = store.lineage(entity_id, direction, depth)
    return _pruned(store, principal, graph)


def neighbourhood(store: Store, principal: Principal, entity_id: str, depth: int = 2) -> dict[str, Any]:
    """Upstream and downstream of an entity, `depth` steps each way, as one node/edge list."""
    principal.require("read")
    up = _pruned(store, principal, store.lineage(entity_id, "up", depth))
    down = _pruned(store, principal, store.lineage(entity_id, "down", depth))
    nodes = {**up.nodes, **down.nodes}
    links = {(l.src, l.dst, l.relation): l for l in [*up.links, *down.links]}
    depth_of = {**{k: -v for k, v in up.depth.items()}, **down.depth}
    return {
        "root": entity_id,
        "nodes": [{**n.to_dict(), "depth": depth_of.get(n.id, 0)} for n in nodes.values()],
        "links": [l.to_dict() for l in links.values() if l.src in nodes and l.dst in nodes],
    }


def _pruned(store: Store, principal: Principal, graph: LineageGraph) -> LineageGraph:
    if principal.experiment_id is None:
        return graph
    from mlkeep.tracking.lineage import LineageGraph

    def visible(node_id: str, kind: str) -> bool:
        if kind == "run":
            return sees(store, principal, node_id)
        if kind == "dataset":
            return dataset_visible(store, principal, node_id)
        if kind == "model":
            return sees(store, principal, store.get_model(node_id).run_id)
        if kind == "prediction":
            return sees(store, principal, store.get_prediction(node_id).run_id)
        if kind == "evaluation":
            return sees(store, principal, store.get_evaluation(node_id).run_id)
        return False

    if graph.root in graph.nodes and not visible(graph.root, graph.nodes[graph.root].kind):
        raise PermissionDeniedError("This token is scoped to an experiment this entity is not part of.")
    nodes = {k: n for k, n in graph.nodes.items() if visible(k, n.kind)}
    return LineageGraph(root=graph.root, direction=graph.direction, nodes=nodes,
                        links=[l for l in graph.links if l.src in nodes and l.dst in nodes],
                        depth={k: v for k, v in graph.depth.items() if k in nodes})
