"""The mlkeep server: a REST API (FastAPI) and a web UI over one store.

`create_app(store, auth=False)` builds the ASGI app; `serve(...)` runs it with
uvicorn. Every route wraps one library call (`mlkeep.server.services` or the
`Store`); access control lives in `mlkeep.access`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlkeep.store import Store

__all__ = ["create_app", "serve"]


def create_app(store: Store, auth: bool = False) -> Any:
    """The FastAPI app serving `store`; with `auth`, every request needs a bearer token."""
    from mlkeep.server.app import create_app as build

    return build(store, auth=auth)


def serve(store: Store, *, host: str = "127.0.0.1", port: int = 5000, auth: bool = False,
          log_level: str = "warning") -> None:
    """Serve `store` until interrupted (binds to loopback unless told otherwise)."""
    import uvicorn

    from mlkeep.server.services.search import warm_up

    app = create_app(store, auth=auth)
    warm_up(store)  # so the first user's runs table is as quick as the next one's
    uvicorn.run(app, host=host, port=port, log_level=log_level)
