"""`mlkeep datasets` and `mlkeep models`: list the tracked entities and show one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, cells, short, when

if TYPE_CHECKING:
    from mlkeep.tracking.entities import Dataset, Model

JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
BAR_WIDTH = 30  # characters of the longest bar in a histogram
STAT_ORDER = ("count", "nulls", "distinct", "mean", "std", "min", "max")

datasets_app = typer.Typer(help="List the datasets logged, or show one.", invoke_without_command=True)
models_app = typer.Typer(help="List the models logged, or show one.", invoke_without_command=True)


# -- datasets ------------------------------------------------------------------------------
@datasets_app.callback()
def datasets(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Option("--name", help="Only datasets with this name.")] = None,
    json_: JsonFlag = False,
) -> None:
    """List the datasets logged (each distinct content once); `datasets show ID` for one."""
    if ctx.invoked_subcommand is not None:
        return
    _common.listing(_common.open_store(ctx).list_datasets(name), json_,
                    ("id", "name", "version", "rows", "columns", "fingerprint", "created", "location"),
                    lambda d: (short(d.id), d.name, d.version, d.num_rows, len(d.columns), short(d.fingerprint),
                               when(d.creation_time), d.location), noun="dataset")


@datasets_app.command("show")
def show_dataset(
    ctx: typer.Context,
    dataset_id: Annotated[str, typer.Argument(metavar="ID", help="The dataset's id.")],
    json_: JsonFlag = False,
) -> None:
    """Show one dataset: attributes, schema, statistics and histograms."""
    d = _common.open_store(ctx).get_dataset(dataset_id)
    if json_:
        _common.print_json(d.to_dict())
        return
    out = _common.console()
    out.print(_common.key_value_table(f"Dataset {d.name}", {
        "id": d.id, "version": d.version, "fingerprint": d.fingerprint, "location": d.location,
        "rows": d.num_rows, "targets": d.targets or "", "derived from": d.derived_from_id or "",
        "created": when(d.creation_time),
    }))
    for renderable in (_schema_table(d), _statistics_table(d)):
        if renderable is not None:
            out.print()
            out.print(renderable)
    for column in _schema_order(d, d.histograms):
        out.print()
        out.print(histogram(column, d.histograms[column]))


def _schema_order(d: Dataset, keys: dict[str, Any]) -> list[str]:
    """Column names of `keys` in the order of the dataset's schema, unknown ones last."""
    in_schema = [c.get("name", "") for c in d.columns]
    return [c for c in in_schema if c in keys] + [c for c in keys if c not in in_schema]


def _schema_table(d: Dataset) -> Any:
    if not d.columns:
        return None
    from rich.table import Table

    table = Table("column", "type", title="Schema", title_justify="left")
    for c in d.columns:
        table.add_row(*cells(c.get("name", ""), c.get("typing", "")))
    return table


def _statistics_table(d: Dataset) -> Any:
    if not d.statistics:
        return None
    from rich.table import Table

    present = {k for stats in d.statistics.values() for k in stats}
    names = [n for n in STAT_ORDER if n in present] + sorted(present - set(STAT_ORDER))
    table = Table("column", *names, title="Statistics", title_justify="left")
    for column in _schema_order(d, d.statistics):
        table.add_row(*cells(column, *(d.statistics[column].get(n, "") for n in names)))
    return table


def histogram(column: str, hist: dict[str, list[Any]]) -> Any:
    """A histogram as horizontal bars: one line per bucket (numeric range or category) with its count."""
    from rich.table import Table
    from rich.text import Text

    counts = [int(c) for c in hist.get("counts", [])]
    edges = hist.get("edges")
    if edges:
        labels = [f"{_common.number(lo)} – {_common.number(hi)}" for lo, hi in zip(edges, edges[1:])]
    else:
        labels = [str(x) for x in hist.get("labels", [])]
    top = max(counts, default=0) or 1
    table = Table(title=f"Histogram of {column}", title_justify="left", show_header=False, box=None,
                  padding=(0, 1, 0, 0))
    table.add_column(justify="right", style="dim")
    table.add_column()
    table.add_column(justify="right")
    for label, count in zip(labels, counts):
        bar = "█" * round(BAR_WIDTH * count / top) or ("▏" if count else "")
        table.add_row(Text(label), Text(bar, style="blue"), Text(str(count)))
    return table


# -- models --------------------------------------------------------------------------------
@models_app.callback()
def models(
    ctx: typer.Context,
    run_id: Annotated[Optional[str], typer.Option("--run", "--run-id", help="Only models logged by this run.")] = None,
    json_: JsonFlag = False,
) -> None:
    """List the models logged; `models show ID` for one."""
    if ctx.invoked_subcommand is not None:
        return
    _common.listing(_common.open_store(ctx).list_models(run_id), json_,
                    ("id", "name", "algorithm", "framework", "run", "trained on", "created"),
                    lambda m: (short(m.id), m.name, m.learning_algorithm,
                               " ".join(x for x in (m.framework, m.framework_version) if x), short(m.run_id),
                               short(m.trained_on_dataset_id), when(m.creation_time)), noun="model")


@models_app.command("show")
def show_model(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(metavar="ID", help="The model's id.")],
    json_: JsonFlag = False,
) -> None:
    """Show one model: algorithm, framework, hyperparameters, transforms and inputs."""
    m = _common.open_store(ctx).get_model(model_id)
    if json_:
        _common.print_json(m.to_dict())
        return
    out = _common.console()
    out.print(_common.key_value_table(f"Model {m.name}", {
        "id": m.id, "algorithm": m.learning_algorithm, "framework": m.framework or "",
        "framework version": m.framework_version or "", "flavor": m.flavor or "", "run": m.run_id or "",
        "trained on": m.trained_on_dataset_id or "", "object": m.object or "", "created": when(m.creation_time),
    }))
    for renderable in (_hyperparameter_table(m), _transform_table(m)):
        if renderable is not None:
            out.print()
            out.print(renderable)


def _hyperparameter_table(m: Model) -> Any:
    if not m.hyperparameters:
        return None
    from rich.table import Table
    from rich.text import Text

    table = Table("name", "value", "type", "non-default", title="Hyperparameters (non-default in bold)",
                  title_justify="left")
    for h in m.hyperparameters:
        style = "bold" if h.non_default else ""
        flag = "" if h.non_default is None else ("yes" if h.non_default else "no")
        table.add_row(Text(h.name, style=style), Text(h.value, style=style), Text(h.typing), Text(flag))
    return table


def _transform_table(m: Model) -> Any:
    if not m.transforms:
        return None
    from rich.table import Table

    names = {t.id: t.name for t in m.transforms}
    table = Table("transform", "framework", "inputs", "parameters", title="Transforms", title_justify="left")
    for t in m.transforms:
        inputs = ", ".join(names.get(i, short(i)) for i in t.input_transforms) or ", ".join(
            c.get("name", "") for c in t.input)
        params = ", ".join(f"{k}={v}" for k, v in t.parameters.items())
        table.add_row(*cells(t.name, t.framework or "", inputs, params))
    return table
