"""`mlkeep server` (REST API and web UI) and `mlkeep token create|list|revoke` (access control)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, short

token_app = typer.Typer(help="Bearer tokens for `mlkeep server --auth`: create, list, revoke.", no_args_is_help=True)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind; loopback unless you mean to share it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port to listen on.")] = 5000,
    store: Annotated[Optional[str], typer.Option("--store", metavar="URI", help="The store to serve (default: as for every command).")] = None,
    auth: Annotated[bool, typer.Option("--auth", help="Require bearer tokens (see `mlkeep token create`).")] = False,
) -> None:
    """Serve the store's REST API (docs at /docs) and web UI until interrupted."""
    import mlkeep
    from mlkeep.server import serve

    opened = mlkeep.open(store) if store else _common.open_store(ctx)
    if not auth and host not in LOOPBACK:
        typer.echo(f"warning: serving {host} without --auth: anyone who can reach it can read and write.", err=True)
    typer.echo(f"mlkeep server: http://{host if ':' not in host else f'[{host}]'}:{port}/  (API docs at /docs)")
    serve(opened, host=host, port=port, auth=auth)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.command("server")(server)


@token_app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="read, write or admin.")],
    experiment: Annotated[Optional[str], typer.Option("--experiment", metavar="NAME", help="Scope the token to this experiment only.")] = None,
    description: Annotated[Optional[str], typer.Option("--description", help="What the token is for.")] = None,
) -> None:
    """Create a token; it is printed once, on the last line (only its hash is stored)."""
    from mlkeep import access

    token, secret = access.create_token(_common.open_store(ctx), role, experiment=experiment, description=description)
    scope = f" for experiment {token.experiment}" if token.experiment else ""
    typer.echo(f"Created {token.role} token {short(token.id)}{scope}. Copy it now, it is not shown again:")
    typer.echo(secret)


@token_app.command("list")
def list_(ctx: typer.Context, json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """List tokens (never their secrets)."""
    from mlkeep import access

    _common.listing(access.list_tokens(_common.open_store(ctx)), json_,
                    ("id", "role", "experiment", "created", "revoked", "description"),
                    lambda t: (short(t.id), t.role, t.experiment or "", _common.when(t.creation_time),
                               _common.when(t.revoked_time), t.description or ""))


@token_app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="ID", help="Token id (or a unique prefix).")]) -> None:
    """Revoke a token: requests carrying it get 401 from now on."""
    from mlkeep import access

    token = access.revoke_token(_common.open_store(ctx), token_id)
    typer.echo(f"Revoked token {short(token.id)}")
