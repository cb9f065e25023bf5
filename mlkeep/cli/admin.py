"""`mlkeep db upgrade` and `mlkeep migrate`: running a store on other engines.

Each wraps one library call: `Database.upgrade` and `mlkeep.migrate.migrate`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, State

db_app = typer.Typer(help="The store's metadata database.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(ctx: typer.Context, json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Upgrade the store's database schema to this version of mlkeep (Alembic; safe to repeat)."""
    from mlkeep import location
    from mlkeep.metadata import Database
    from mlkeep.metadata.database import HEAD_REVISION

    state = ctx.find_object(State)
    loc = location.find(state.store if state else None)
    db = Database(loc.database)
    try:
        before = db.revision()
        db.upgrade()
        after = db.revision()
    finally:
        db.dispose()
    if json_:
        _common.print_json({"from": before, "to": after, "head": HEAD_REVISION})
    elif before == after:
        typer.echo(f"Database already at revision {after}.")
    else:
        typer.echo(f"Database upgraded from revision {before or '(empty)'} to {after}.")


def migrate(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="DB_URL", help="Target database, e.g. postgresql://user@host/mlkeep.")],
    objects: Annotated[str, typer.Option("--objects", metavar="URL", help="Target object store, e.g. s3://bucket/prefix.")],
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Copy the whole store to another database and object store, then check counts and hashes.

    Safe to run again: it resumes an interrupted copy and adds what is new.
    """
    from rich.progress import Progress

    from mlkeep.migrate import migrate as run_migrate

    store = _common.open_store(ctx)
    with Progress(transient=True, disable=json_) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done)

        report = run_migrate(store, to, objects, progress=progress)
    if json_:
        _common.print_json(report.to_dict())
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


def _print(report: Any) -> None:
    from rich.table import Table

    con = _common.console()
    table = Table("table", title="Tables", title_justify="left")
    for column in ("source", "copied", "target"):
        table.add_column(column, justify="right")
    table.add_column("same")
    for name, t in report.tables.items():
        table.add_row(*_common.cells(name, t.source, t.copied, t.target, "yes" if t.same else "NO"))
    con.print(table)
    con.print(f"{report.objects} objects: {report.objects_copied} copied ({report.bytes_copied} bytes), "
              f"{report.objects_verified} verified in the target")
    for problem in report.problems:
        con.print(f"[red]{problem}[/]")
    con.print("[green]ok: nothing lost[/]" if report.ok else "[red]problems found[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("migrate")(migrate)
