"""`mlkeep export` and `mlkeep import`: the store as ml-experiments-schema JSON documents."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP


SCHEMA_HELP = "Validate the documents against this ml-experiments-schema file (default: $MLKEEP_SCHEMA, if set)."


class Format(str, Enum):
    """Export formats (one so far)."""

    ml_experiments_schema = "ml-experiments-schema"


def export(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write the documents into.")],
    format: Annotated[Format, typer.Option("--format", help="Document format.")] = Format.ml_experiments_schema,
    schema: Annotated[Optional[Path], typer.Option("--schema", metavar="PATH", help=SCHEMA_HELP)] = None,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Export every dataset, model, run, prediction and evaluation as JSON documents into DIR."""
    counts = _common.open_store(ctx).export(folder, schema=schema)
    _print_counts(counts, f"Exported into {folder}", json_)


def import_(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder of documents written by `mlkeep export`.")],
    schema: Annotated[Optional[Path], typer.Option("--schema", metavar="PATH", help=SCHEMA_HELP)] = None,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Import ml-experiments-schema JSON documents from DIR into the store."""
    counts = _common.open_store(ctx).import_(folder, schema=schema)
    _print_counts(counts, f"Imported from {folder}", json_)


def _print_counts(counts: dict[str, int], title: str, json_: bool) -> None:
    if json_:
        _common.print_json(counts)
        return
    from rich.table import Table

    table = Table("kind", title=title, title_justify="left")
    table.add_column("count", justify="right")
    for kind, n in counts.items():
        table.add_row(*_common.cells(kind, n))
    _common.console().print(table)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
