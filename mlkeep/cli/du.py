"""`mlkeep du`: where the store's bytes go, after de-duplication; wraps `mlkeep.usage.du`."""

from __future__ import annotations

from typing import Annotated

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP


def du(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", metavar="kind|experiment|repo|intermediate",
                                    help="Group the bytes by kind of entity, experiment, repository or intermediate.")] = "kind",
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Stored bytes per group (each object counted once; shared ones apart) beside the logical bytes referenced."""
    from rich.table import Table

    from mlkeep.usage import du as usage

    report = usage(_common.open_store(ctx), by=by)
    if json_:
        _common.print_json(report.to_dict())
        return
    table = Table(by, "entities", "logical", "stored", "objects", "also shared")
    table.columns[0].no_wrap = True
    for col in range(1, 6):
        table.columns[col].justify = "right"
    for g in report.groups:
        table.add_row(*_common.cells(g.label, g.entities, _common.size(g.logical_bytes), _common.size(g.stored_bytes),
                                     g.objects, _common.size(g.shared_bytes) if g.shared_objects else ""))
    table.add_section()
    for label, part in (("shared by several groups", report.shared), (f"not grouped by {by}", report.other),
                        ("referenced by nothing", report.unreferenced)):
        if part.objects:
            table.add_row(*_common.cells(label, "", "", _common.size(part.stored_bytes), part.objects, ""))
    table.add_row(*_common.cells("total", "", _common.size(report.logical_bytes), _common.size(report.total.stored_bytes),
                                 report.total.objects, ""), style="bold")
    con = _common.console()
    con.print(table)
    if report.missing:
        con.print(f"[red]{_common.count(report.missing, 'reference')} to missing objects: run `mlkeep fsck`[/]")


def register(app: typer.Typer) -> None:
    app.command("du")(du)
