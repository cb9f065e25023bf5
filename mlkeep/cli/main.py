"""The `mlkeep` command: root app, global options, error handling, and the small commands.

Every command wraps one library call and only renders its result. Any
`MlkeepError` becomes one line on stderr (`error: ...`) and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from mlkeep import __version__
from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, State
from mlkeep.errors import MlkeepError


def one_line(exc: BaseException) -> str:
    """The error's message on one line (a message may span several)."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


class MlkeepGroup(TyperGroup):
    """The root group: turns library errors raised by any subcommand into one line and exit 1."""

    def invoke(self, ctx: Any) -> Any:  # a click Context; typer's own type is private
        try:
            return super().invoke(ctx)
        except MlkeepError as exc:
            typer.echo(f"error: {one_line(exc)}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="mlkeep",
    cls=MlkeepGroup,
    help="mlkeep: track runs, datasets and models, and follow their lineage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mlkeep {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    store: Annotated[
        Optional[str],
        typer.Option(
            "--store",
            envvar="MLKEEP_URI",
            metavar="URI",
            help="The store: a folder holding .mlkeep/, or memory://. Default: the nearest .mlkeep/ above the working directory.",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print mlkeep's version and exit.")
    ] = False,
) -> None:
    """mlkeep: track runs, datasets and models, and follow their lineage."""
    ctx.obj = State(store=store)


@app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="Folder in which to create .mlkeep/.")] = Path("."),
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Create a new store in PATH/.mlkeep/ (SQLite database plus object folder)."""
    import mlkeep

    with mlkeep.init(path) as store:
        uri = store.uri
    if json_:
        _common.print_json({"uri": uri})
    else:
        typer.echo(f"Created an mlkeep store in {uri}")


@app.command("experiments")
def experiments(ctx: typer.Context, json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """List the experiments of the store."""
    _common.listing(_common.open_store(ctx).list_experiments(), json_, ("id", "name", "created", "description"),
                    lambda e: (_common.short(e.id), e.name, _common.when(e.creation_time), e.description or ""))


@app.command("fsck")
def fsck(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option("--repair", help="Quarantine corrupt objects; delete temporary files left by killed writers.")] = False,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Check the store: database integrity, every object's hash, references, and every commit's weights."""
    report = _common.open_store(ctx).fsck(repair=repair)
    if json_:
        _common.print_json(report.to_dict())
    else:
        con = _common.console()
        con.print(f"{report.objects_checked} objects checked")
        for line in report.database:
            con.print(f"[red]database: {line}[/]")
        for oid in report.corrupt:
            con.print(f"[red]corrupt object {oid}[/]")
        for a in report.affected:
            con.print(f"[red]  named by {a['kind']} {a['id']}[/]")
        for path in report.quarantined:
            con.print(f"moved to {path}")
        for m in report.missing:
            con.print(f"[red]missing object {m['object']} of {m['kind']} {m['id']}[/]")
        for c in report.broken_commits:
            con.print(f"[red]commit {c['commit']} of {c['repository']}: {c['error']}[/]")
        if report.temporary_files:
            verb = "removed" if repair else "left by killed writers (harmless; --repair removes them)"
            con.print(f"{len(report.temporary_files)} temporary files {verb}")
        con.print("[green]ok[/]" if report.ok else "[red]problems found[/]")
    if not report.ok:
        raise typer.Exit(1)


def _register() -> None:
    # The domain modules add their commands to `app`; imported here, after `app` exists.
    from mlkeep.cli import admin, artifacts, du, entities, exchange, gc, intermediates, lineage, registry, repo, runs, server
    from mlkeep.cli import mlflow_import

    app.add_typer(runs.app, name="runs")
    app.add_typer(artifacts.app, name="artifacts")
    app.add_typer(entities.datasets_app, name="datasets")
    app.add_typer(entities.models_app, name="models")
    app.add_typer(repo.app, name="repo")
    app.add_typer(intermediates.app, name="intermediates")
    lineage.register(app)
    exchange.register(app)
    server.register(app)
    gc.register(app)
    du.register(app)
    app.add_typer(server.token_app, name="token")
    admin.register(app)
    registry.register_commands(app)
    mlflow_import.register(app)


_register()


def main() -> None:
    """Entry point of the `mlkeep` console script."""
    app()
