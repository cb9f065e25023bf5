"""`mlkeep import-mlflow SOURCE`: migrate an MLflow store in (wraps `mlkeep.compat.mlflow.importer.import_mlflow`)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP


def import_mlflow(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The MLflow tracking URI: sqlite:///mlflow.db, file:./mlruns or "
                                               "http://host:5000.")],
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Import experiments, runs (full metric histories), params, tags, artifacts, datasets, logged models,
    registered models, versions and aliases from MLflow; re-running imports only what is new."""
    from rich.progress import Progress, TaskID

    from mlkeep.compat.mlflow.importer import import_mlflow as run_import

    store = _common.open_store(ctx)
    with Progress(transient=True, disable=json_) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = run_import(store, source, progress=progress)
    if json_:
        _common.print_json({**report.to_dict(), "verified": report.verified})
    else:
        con = _common.console()
        con.print(_common.key_value_table(f"imported from {source}", {
            "experiments": report.experiments, "runs": report.runs,
            "runs already here (skipped)": report.runs_skipped, "params": report.params, "tags": report.tags,
            "metric points": report.metric_points, "artifacts": report.artifacts, "datasets": report.datasets,
            "logged models": report.logged_models, "registered models": report.registered_models,
            "model versions": report.model_versions, "aliases": report.aliases,
        }))
        for line in report.skipped:
            con.print(f"[yellow]not imported: {line}[/]")
        for line in report.mismatches:
            con.print(f"[red]mismatch: {line}[/]")
        con.print("[green]verified: every count matches the source[/]" if report.verified
                  else "[red]verification failed[/]")
    if not report.verified:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("import-mlflow")(import_mlflow)
