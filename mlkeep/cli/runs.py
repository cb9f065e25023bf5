"""`mlkeep runs ...`: search, show, compare and metric history of runs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, cells, duration, number, short, when

if TYPE_CHECKING:
    from mlkeep.tracking.entities import Run

app = typer.Typer(help="Search, show and compare runs.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
# A search table shows at most this many param and metric columns each; the rest are in `runs show` and --json.
MAX_KEY_COLUMNS = 4
# Keys the filter or ordering names get their columns first.
KEY_REFERENCE = re.compile(r"\b(params|metrics)\.(\w+)")


@app.command("search")
def search(
    ctx: typer.Context,
    filter: Annotated[
        str, typer.Argument(help="Filter, e.g. \"metrics.acc > 0.9 and params.model = 'rf'\". Empty: every run.")
    ] = "",
    order_by: Annotated[
        Optional[list[str]],
        typer.Option("--order-by", help="Sort key such as 'metrics.acc DESC' (repeatable)."),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Return at most N runs.")] = None,
    experiment: Annotated[
        Optional[list[str]], typer.Option("--experiment", "-e", help="Only runs of this experiment (repeatable).")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Find runs with a filter over params, metrics, tags and attributes."""
    found = _common.open_store(ctx).search_runs(filter, order_by=order_by or None, limit=limit, experiments=experiment or None)
    if json_:
        _common.print_json([r.to_dict() for r in found])
        return
    mentioned = KEY_REFERENCE.findall(" ".join([filter, *(order_by or [])]))
    con = _common.console()
    con.print(_search_table(found, mentioned, con.width))


def _key_columns(found: list[Run], mentioned: list[tuple[str, str]], budget: int) -> tuple[list[tuple[str, str]], int]:
    """(kind, key) columns that fit: keys the filter or ordering names first, then metrics, then params."""
    present = [(kind, k) for kind in ("metrics", "params") for k in sorted({k for r in found for k in getattr(r, kind)})]
    first = [m for m in dict.fromkeys(mentioned) if m in present]
    keys = first + [k for k in present if k not in first]
    return keys[:budget], max(len(keys) - budget, 0)


def _search_table(found: list[Run], mentioned: list[tuple[str, str]], width: int) -> Any:
    from rich.table import Table

    wide = width >= 140
    budget = max(1, min(MAX_KEY_COLUMNS * 2, (width - (75 if wide else 45)) // 16))
    keys, hidden = _key_columns(found, mentioned, budget)
    caption = _common.count(len(found), "run") + (
        f" ({hidden} more params/metrics not shown: see `mlkeep runs show ID`)" if hidden else ""
    )
    table = Table(caption=caption, caption_justify="left")
    base = ("id", "name", "experiment", "status", "start", "duration") if wide else ("id", "name", "status")
    for name in base:
        table.add_column(name, no_wrap=True, min_width=len(name))
    for kind, key in keys:
        table.add_column(f"{kind}.{key}", style="magenta" if kind == "metrics" else "cyan",
                         justify="right" if kind == "metrics" else "left", min_width=min(len(key) + 8, 14))
    for r in found:
        values = {
            "id": short(r.id), "name": r.name, "experiment": r.experiment, "status": _common.status(r.status),
            "start": when(r.start_time),
            "duration": duration(r.start_time, r.end_time) if r.end_time else r.status.lower(),
        }
        table.add_row(*cells(
            *(values[b] for b in base),
            *((r.metrics[k].value if k in r.metrics else "") if kind == "metrics" else r.params.get(k, "")
              for kind, k in keys),
        ))
    return table


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    json_: JsonFlag = False,
) -> None:
    """Show one run: attributes, params, tags, metrics, artifacts, environment and failure."""
    store = _common.open_store(ctx)
    run = store.get_run(run_id)
    found = store.list_artifacts(run_id)
    if json_:
        _common.print_json({**run.to_dict(), "artifacts": [a.to_dict() for a in found]})
        return
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    out = _common.console()
    out.print(_common.key_value_table(f"Run {run.name}", {
        "id": run.id, "experiment": run.experiment, "status": _common.status(run.status),
        "start": when(run.start_time), "end": when(run.end_time), "duration": duration(run.start_time, run.end_time),
        "parent": run.parent_run_id or "", "creator": run.creator or "",
    }))
    for title, values in (("Params", run.params), ("Tags", run.tags)):
        if values:
            out.print()
            out.print(_common.key_value_table(title, dict(sorted(values.items()))))
    if run.metrics:
        table = Table("metric", "last", "step", "min", "max", "count", title="Metrics", title_justify="left")
        for key, m in sorted(run.metrics.items()):
            table.add_row(*cells(key, m.value, m.step, m.min, m.max, m.count))
        out.print()
        out.print(table)
    if found:
        table = Table("path", "size", "object", title="Artifacts", title_justify="left")
        for a in found:
            table.add_row(*cells(a.path, _common.size(a.size), short(a.object)))
        out.print()
        out.print(table)
    if run.environment:
        out.print()
        out.print(_common.key_value_table("Environment", dict(sorted(run.environment.items()))))
    if run.failure:
        out.print()
        out.print(Panel(Text(run.failure.rstrip()), title="Failure", title_align="left", border_style="red"))


@app.command("compare")
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    json_: JsonFlag = False,
) -> None:
    """Compare runs side by side: params (differences highlighted) and metrics (last / min / max)."""
    store = _common.open_store(ctx)
    found = [store.get_run(run_id) for run_id in run_ids]
    param_keys = sorted({k for r in found for k in r.params})
    differing = [k for k in param_keys if len({r.params.get(k) for r in found}) > 1]
    if json_:
        _common.print_json({"runs": [r.to_dict() for r in found], "differing_params": differing})
        return
    from rich.table import Table
    from rich.text import Text

    out = _common.console()
    headers = [f"{r.name} ({short(r.id)})" for r in found]
    params = Table("param", *headers, title="Params (differing ones highlighted)", title_justify="left")
    for key in param_keys:
        style = "bold yellow" if key in differing else ""
        params.add_row(Text(key, style=style), *(Text(r.params.get(key, "—"), style=style) for r in found))
    out.print(params)
    metric_keys = sorted({k for r in found for k in r.metrics})
    metrics = Table("metric", *headers, title="Metrics (last / min / max)", title_justify="left")
    for key in metric_keys:
        metrics.add_row(Text(key), *(
            Text(f"{number(m.value)} / {number(m.min)} / {number(m.max)}" if (m := r.metrics.get(key)) else "—")
            for r in found
        ))
    out.print()
    out.print(metrics)


@app.command("history")
def history(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    key: Annotated[str, typer.Argument(metavar="METRIC", help="The metric's name.")],
    json_: JsonFlag = False,
) -> None:
    """Every logged value of one metric of a run, by step."""
    points = _common.open_store(ctx).get_metric_history(run_id, key)
    if json_:
        _common.print_json([p.to_dict() for p in points])
        return
    from rich.table import Table

    table = Table("step", "value", "time", title=f"{key} of run {short(run_id)}", title_justify="left",
                  caption=_common.count(len(points), "point"), caption_justify="left")
    for p in points:
        table.add_row(*cells(p.step, p.value, when(p.timestamp)))
    _common.console().print(table)


@app.command("diff-env")
def diff_env(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(help="The first run's id.")],
    run_b: Annotated[str, typer.Argument(help="The second run's id.")],
    json_: JsonFlag = False,
) -> None:
    """What differs between two runs' environments: packages, git, code, platform, variables."""
    found = _common.open_store(ctx).diff_environments(run_a, run_b)
    if json_:
        _common.print_json(found.to_dict())
        return
    from rich.table import Table
    from rich.text import Text

    out = _common.console()
    if found.identical:
        out.print(f"Runs {short(run_a)} and {short(run_b)} ran in the same environment.")
        return
    table = Table("key", short(run_a), short(run_b), title="Environment differences", title_justify="left")
    for key, (a, b) in found.changed.items():
        table.add_row(key, *(Text("—" if v is None else str(v)[:80]) for v in (a, b)))
    out.print(table)
    for key, text in found.text.items():
        out.print()
        out.print(Text(key, style="bold"))
        out.print(Text(text))
