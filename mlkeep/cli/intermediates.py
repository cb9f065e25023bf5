"""`mlkeep intermediates ...`: list, show, query, plan and delete stored model intermediates."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, cells, short

app = typer.Typer(help="Model intermediates: layer outputs kept for diagnosis, stored or recomputed by cost.",
                  no_args_is_help=True)

REF = Annotated[str, typer.Argument(metavar="INTERMEDIATE", help="Id, id prefix or name of an intermediate.")]
KINDS = ("get", "topk", "knn", "stats")


@app.command("ls")
def ls(
    ctx: typer.Context,
    repository: Annotated[Optional[str], typer.Option("--repository", help="Only this repository's.")] = None,
    layer: Annotated[Optional[str], typer.Option("--layer", help="Only this layer's.")] = None,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List intermediates: layer, model version, codec, size against raw float32, status."""
    _common.listing(_common.open_store(ctx).intermediates.list(repository=repository, layer=layer), json_,
                    ("id", "name", "commit", "shape", "codec", "stored", "ratio", "status", "queries"),
                    lambda i: (short(i.id), i.name, short(i.commit_id), f"{i.n_rows}×{'×'.join(map(str, i.row_shape))}",
                               i.codec, _common.size(i.stored_bytes), f"{i.ratio:.1f}×", i.status, i.n_queries))


@app.command("show")
def show(ctx: typer.Context, intermediate: REF,
         json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Show one intermediate: where it came from, how it is stored, what the cost model measured."""
    i = _common.open_store(ctx).intermediates.info(intermediate)
    if json_:
        _common.print_json(i.to_dict())
        return
    rows = {"id": i.id, "name": i.name, "layer": i.layer, "repository": i.repository, "commit": i.commit_id,
            "dataset": i.dataset_id, "rows": i.n_rows, "row shape": "×".join(map(str, i.row_shape)), "codec": i.codec,
            "status": i.status, "raw": _common.size(i.raw_bytes), "stored": _common.size(i.stored_bytes),
            "added": _common.size(i.new_bytes), "queries": i.n_queries, "t_rerun (s)": i.t_rerun,
            "t_read (s)": i.t_read, "created": _common.when(i.creation_time)}
    _common.console().print(_common.key_value_table(i.name, rows))


@app.command("query")
def query(
    ctx: typer.Context,
    intermediate: REF,
    kind: Annotated[str, typer.Argument(metavar="KIND", help="get, topk, knn or stats.")],
    rows: Annotated[Optional[str], typer.Option("--rows", help="get: row ids, e.g. 0,5,9.")] = None,
    columns: Annotated[Optional[str], typer.Option("--columns", help="get, stats: column ids, e.g. 0,1.")] = None,
    neuron: Annotated[int, typer.Option("--neuron", help="topk: the column.")] = 0,
    row: Annotated[int, typer.Option("--row", help="knn: the example.")] = 0,
    k: Annotated[int, typer.Option("-k", help="topk, knn: how many.")] = 10,
    source: Annotated[str, typer.Option("--source", help="auto (cost model), read or rerun.")] = "auto",
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Answer a diagnostic query: get values, top-k examples of a neuron, nearest examples, per-class stats."""
    inter = _common.open_store(ctx).intermediates
    if kind == "get":
        values = inter.get(intermediate, _ints(rows), _ints(columns), source=source)
        _print_frame(_frame(values, _ints(rows), _ints(columns)), json_)
    elif kind == "topk":
        _print_frame(inter.topk(intermediate, neuron, k, source=source), json_)
    elif kind == "knn":
        _print_frame(inter.knn(intermediate, row, k, source=source), json_)
    elif kind == "stats":
        _print_frame(inter.stats(intermediate, columns=_ints(columns), source=source), json_)
    else:
        from mlkeep.errors import InvalidInputError

        raise InvalidInputError(f"Unknown query {kind!r}; use one of {', '.join(KINDS)}.")


@app.command("plan")
def plan(
    ctx: typer.Context,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Seconds saved per GB stored to keep one.")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Materialize and drop as decided.")] = False,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show each intermediate's cost figures (t_rerun, t_read, γ) and whether to store it."""
    decisions = _common.open_store(ctx).intermediates.plan(threshold, apply=apply)
    if json_:
        _common.print_json([d.to_dict() for d in decisions])
        return
    from rich.table import Table

    table = Table("id", "name", "status", "stored", "queries", "t_rerun", "t_read", "γ (s/GB)", "query from", "action")
    for d in decisions:
        table.add_row(*cells(short(d.intermediate), d.name, d.status, _common.size(d.stored_bytes), d.n_queries,
                             f"{d.t_rerun:.3g}s", f"{d.t_read:.3g}s", f"{d.gamma:.3g}", d.query_from, d.action))
    _common.console().print(table)


@app.command("rm")
def rm(ctx: typer.Context, intermediate: REF) -> None:
    """Delete an intermediate's record; `mlkeep gc` then frees the chunks no other intermediate uses."""
    inter = _common.open_store(ctx).intermediates
    item = inter.info(intermediate)
    inter.delete(item)
    typer.echo(f"Deleted {item.name} ({short(item.id)}); run `mlkeep gc` to free its chunks.")


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        from mlkeep.errors import InvalidInputError

        raise InvalidInputError(f"{text!r} is not a comma-separated list of whole numbers.") from None


def _frame(values: object, rows: list[int] | None, columns: list[int] | None) -> object:
    import pandas as pd

    return pd.DataFrame(values, index=rows, columns=columns)


def _print_frame(frame: object, json_: bool) -> None:
    if json_:
        _common.print_json(frame.to_dict(orient="split"))  # type: ignore[attr-defined]
        return
    typer.echo(frame.to_string())  # type: ignore[attr-defined]
