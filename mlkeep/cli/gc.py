"""`mlkeep gc`: delete objects that no commit, branch, tag, run, dataset, model or prediction reaches."""

from __future__ import annotations

from typing import Annotated

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP


def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")] = False,
    grace: Annotated[float, typer.Option("--grace", min=0, metavar="SECONDS",
                                         help="Keep objects younger than this, reachable or not (concurrent writers).")] = 3600.0,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Delete unreachable objects older than --grace seconds (default one hour)."""
    report = _common.open_store(ctx).gc(dry_run=dry_run, grace_seconds=grace)
    if json_:
        _common.print_json(report.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{report.objects} objects: {report.reachable} reachable, {report.unreachable} unreachable "
        f"({report.too_young} younger than {grace:g}s kept); {verb} {len(report.deleted)} "
        f"({_common.size(report.bytes_freed)})"
    )


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)
