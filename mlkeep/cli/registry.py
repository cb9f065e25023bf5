"""`mlkeep registry ...` (registered models, versions, aliases, cards), `mlkeep serve`, `mlkeep card`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, cells

app = typer.Typer(help="Registered models: numbered versions, aliases with their history, model cards.",
                  no_args_is_help=True)
NAME = Annotated[str, typer.Argument(metavar="NAME", help="The registered model.")]
JSON = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command("register")
def register(
    ctx: typer.Context,
    name: NAME,
    source: Annotated[str, typer.Argument(help="A logged model id, a commit id, or REPO@REF.")],
    description: Annotated[Optional[str], typer.Option("--description", help="What this version is.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="KEY=VALUE, repeatable.")] = None,
    json_: JSON = False,
) -> None:
    """Register SOURCE as the next version of NAME."""
    tags = dict(t.split("=", 1) for t in tag or [] if "=" in t)
    v = _common.open_store(ctx).registry.register(name, source, description=description, tags=tags)
    _out(v.to_dict() if json_ else None, f"Registered {name} version {v.version} from {v.source}")


@app.command("list")
def list_(
    ctx: typer.Context,
    filter: Annotated[str, typer.Option("--filter", help="e.g. \"name like 'digits%' and tags.team = 'cv'\".")] = "",
    json_: JSON = False,
) -> None:
    """List registered models (matching --filter)."""
    _common.listing(
        _common.open_store(ctx).registry.search(filter), json_,
        ("name", "latest", "aliases", "owner", "updated", "description"),
        lambda m: (m.name, str(m.latest_version or ""), " ".join(f"{a}→{n}" for a, n in m.aliases.items()),
                   m.owner or "", _common.when(m.last_updated_time), m.description or ""))


@app.command("show")
def show(ctx: typer.Context, name: NAME, json_: JSON = False) -> None:
    """Show NAME's versions and aliases."""
    registry = _common.open_store(ctx).registry
    rm, versions = registry.get(name), registry.versions(name)
    if json_:
        _common.print_json({**rm.to_dict(), "versions": versions})
        return
    from rich.table import Table

    con = _common.console()
    con.print(f"[bold]{rm.name}[/] owner {rm.owner or '?'}  {rm.description or ''}")
    table = Table("version", "aliases", "source", "created", "owner", "description")
    for v in versions:
        table.add_row(*cells(str(v.version), " ".join(v.aliases), v.source, _common.when(v.creation_time),
                             v.owner or "", v.description or ""))
    con.print(table)


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: NAME,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production.")],
    version: Annotated[int, typer.Argument(help="The version the alias points at.", min=1)],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why (kept in the history).")] = None,
    json_: JSON = False,
) -> None:
    """Point ALIAS of NAME at VERSION (recorded in the history)."""
    t = _common.open_store(ctx).registry.set_alias(name, alias_name, version, reason=reason)
    _out(t.to_dict() if json_ else None, f"{name}@{alias_name}: {t.from_version or '-'} → {t.to_version}")


@app.command("unalias")
def unalias(
    ctx: typer.Context,
    name: NAME,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="The alias to remove.")],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why (kept in the history).")] = None,
    json_: JSON = False,
) -> None:
    """Remove ALIAS of NAME (recorded in the history)."""
    t = _common.open_store(ctx).registry.delete_alias(name, alias_name, reason=reason)
    _out(t.to_dict() if json_ else None, f"{name}@{alias_name}: {t.from_version} → removed")


@app.command("history")
def history(ctx: typer.Context, name: NAME, json_: JSON = False) -> None:
    """Every alias move of NAME: when, who, from, to, why."""
    _common.listing(
        _common.open_store(ctx).registry.history(name), json_, ("when", "alias", "from", "to", "who", "why"),
        lambda t: (_common.when(t.time), t.alias, str(t.from_version or "-"), str(t.to_version or "-"),
                   t.user or "", t.reason or ""))


REF = Annotated[str, typer.Argument(metavar="NAME@ALIAS", help="NAME@ALIAS, NAME/VERSION, models:/... or NAME.")]


def card(
    ctx: typer.Context,
    ref: REF,
    version: Annotated[Optional[int], typer.Option("--version", min=1, help="With a bare NAME; default: latest.")] = None,
    format: Annotated[str, typer.Option("--format", help="md (Markdown) or html.")] = "md",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to FILE, not stdout.")] = None,
) -> None:
    """Write the model card of a registered version (with its known drift)."""
    text = _common.open_store(ctx).registry.model_card(ref, version, format=format)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(str(output))


app.command("card")(card)


def serve(
    ctx: typer.Context,
    ref: REF,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 5001,
    log_rate: Annotated[float, typer.Option("--log-rate", help="Share of requests logged as Predictions.")] = 0.1,
) -> None:
    """Serve a registered version over HTTP: POST /predict and /invocations, GET /health and /metadata."""
    import uvicorn

    from mlkeep.lifecycle.serving import create_serving_app

    uvicorn.run(create_serving_app(_common.open_store(ctx), ref, log_rate=log_rate), host=host, port=port,
                log_level="warning")


def register_commands(root: typer.Typer) -> None:
    from mlkeep.cli import monitor

    root.add_typer(app, name="registry")
    root.command("serve")(serve)
    root.command("card")(card)
    root.add_typer(monitor.app, name="monitor")


def _out(data: object, line: str) -> None:
    if data is not None:
        _common.print_json(data)
    else:
        typer.echo(line)
