"""`mlkeep artifacts ...`: list and download the files a run logged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, short

app = typer.Typer(help="List and download the files runs logged.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    path: Annotated[str, typer.Argument(help="Only artifacts in this folder (relative to the run).")] = "",
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List a run's artifacts, optionally under PATH."""
    _common.listing(_common.open_store(ctx).list_artifacts(run_id, path), json_, ("path", "size", "object"),
                    lambda a: (a.path, _common.size(a.size), short(a.object)), noun="artifact")


@app.command("download")
def download(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    dest: Annotated[Path, typer.Argument(help="Folder to write the files into (created if missing).")],
    path: Annotated[str, typer.Option("--path", help="Only the artifact or folder at this path.")] = "",
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Download a run's artifacts into DEST, each verified against its hash."""
    written = _common.open_store(ctx).download_artifacts(run_id, dest, path)
    if json_:
        _common.print_json([str(p) for p in written])
        return
    for p in written:
        typer.echo(str(p))
    typer.echo(f"Downloaded {len(written)} file(s) into {dest}", err=True)
