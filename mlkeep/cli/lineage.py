"""`mlkeep lineage ID`: what went into an entity, or what came out of it, as a tree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, short

if TYPE_CHECKING:
    from mlkeep.tracking.lineage import LineageGraph

KIND_STYLE = {"dataset": "green", "run": "cyan", "model": "magenta", "prediction": "yellow", "evaluation": "blue"}


def lineage(
    ctx: typer.Context,
    entity_id: Annotated[str, typer.Argument(metavar="ID", help="Id of a dataset, run, model, prediction or evaluation.")],
    up: Annotated[
        bool, typer.Option("--up/--down", help="Upstream: what went into it (default); downstream: what came out of it.")
    ] = True,
    depth: Annotated[Optional[int], typer.Option("--depth", min=0, help="Follow at most N links (default: all).")] = None,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show the lineage of an entity as a tree from it, upstream or downstream."""
    graph = _common.open_store(ctx).lineage(entity_id, direction="up" if up else "down", depth=depth)
    if json_:
        _common.print_json(graph.to_dict())
        return
    _common.console().print(tree(graph))


def tree(graph: LineageGraph) -> Any:
    """The graph as a rich Tree from its root.

    A node is expanded once, under the first parent that reaches it in the fewest
    steps; anywhere else it is only named, with a pointer to where it is shown.
    """
    from rich.text import Text
    from rich.tree import Tree

    owner = _owners(graph)
    printed = {graph.root}
    root = Tree(_label(graph, graph.root))

    def grow(branch: Tree, node_id: str) -> None:
        for child, relation in _ordered(graph, graph.children(node_id)):
            label = Text.assemble((f"{relation} ", "dim"), "→ ", _label(graph, child))
            if owner.get(child) != (node_id, relation) or child in printed:
                where = "shown above" if child in printed else "shown below"
                branch.add(Text.assemble(label, (f" ({where})", "dim italic")))
                continue
            printed.add(child)
            grow(branch.add(label), child)

    grow(root, graph.root)
    return root


def _owners(graph: LineageGraph) -> dict[str, tuple[str, str]]:
    """For each node, the (parent, relation) under which it is expanded: first reached breadth-first."""
    owner: dict[str, tuple[str, str]] = {}
    frontier, seen = [graph.root], {graph.root}
    while frontier:
        nxt = []
        for node_id in frontier:
            for child, relation in _ordered(graph, graph.children(node_id)):
                if child not in seen:
                    seen.add(child)
                    owner[child] = (node_id, relation)
                    nxt.append(child)
        frontier = nxt
    return owner


def _ordered(graph: LineageGraph, edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Edges in a stable order: by kind (datasets, runs, models, predictions, evaluations), name, id."""
    order = list(KIND_STYLE)

    def key(edge: tuple[str, str]) -> tuple[int, str, str, str]:
        node = graph.nodes.get(edge[0])
        kind = node.kind if node else ""
        rank = order.index(kind) if kind in order else len(order)
        return rank, node.name if node else "", edge[0], edge[1]

    return sorted(edges, key=key)


def _label(graph: LineageGraph, node_id: str) -> Any:
    from rich.text import Text

    node = graph.nodes.get(node_id)
    kind, name = (node.kind, node.name) if node else ("?", "")
    parts: list[Any] = [(kind, KIND_STYLE.get(kind, ""))]
    if name and name != kind:  # unnamed entities are named after their kind
        parts += [" ", (name, "bold")]
    return Text.assemble(*parts, " ", (short(node_id), "dim"))


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)
