"""The model registry: registered models, numbered versions, aliases with their history, model cards."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse

from mlkeep.lifecycle.entities import ModelVersion, RegisteredModel, Transition
from mlkeep.server.app import CTX
from mlkeep.server.schemas import MAX_INDEX, AliasIn, ModelCard, RegisterIn, RegistryUpdate
from mlkeep.server.services.registry import registry

router = APIRouter(prefix="/registry", tags=["registry"])
Version = Annotated[int, Query(ge=1, le=MAX_INDEX)]
VersionPath = Annotated[int, Path(ge=1, le=MAX_INDEX)]


@router.get("/models", response_model=list[RegisteredModel])
def list_models(ctx: CTX, filter: str = "") -> Any:
    """Registered models matching e.g. `name like 'digits%' and tags.team = 'vision'`, by name."""
    return registry(ctx.store, ctx.principal).search(filter)


@router.get("/resolve", response_model=ModelVersion)
def resolve(ctx: CTX, uri: Annotated[str, Query(min_length=1)]) -> Any:
    """The version `models:/NAME@ALIAS`, `models:/NAME/N` or `models:/NAME` (latest) names."""
    return registry(ctx.store, ctx.principal).resolve(uri)


@router.get("/models/{name}", response_model=RegisteredModel)
def get_model(name: str, ctx: CTX) -> Any:
    """A registered model with its tags, aliases and latest version number."""
    return registry(ctx.store, ctx.principal).get(name)


@router.patch("/models/{name}", response_model=RegisteredModel)
def update_model(name: str, body: RegistryUpdate, ctx: CTX) -> Any:
    return registry(ctx.store, ctx.principal, "write").update_model(
        name, description=body.description, owner=body.owner, tags=body.tags)


@router.get("/models/{name}/versions", response_model=list[ModelVersion])
def versions(name: str, ctx: CTX) -> Any:
    """Every version, oldest first, with the aliases pointing at each."""
    return registry(ctx.store, ctx.principal).versions(name)


@router.post("/models/{name}/versions", response_model=ModelVersion, status_code=201)
def register(name: str, body: RegisterIn, ctx: CTX) -> Any:
    """Make the next version of `name` (created on first use) from a logged Model or a commit."""
    return registry(ctx.store, ctx.principal, "write").register(
        name, body.source, body.description, body.tags, owner=body.owner)


@router.get("/models/{name}/versions/{version}", response_model=ModelVersion)
def get_version(name: str, version: VersionPath, ctx: CTX) -> Any:
    return registry(ctx.store, ctx.principal).get_version(name, version)


@router.patch("/models/{name}/versions/{version}", response_model=ModelVersion)
def update_version(name: str, version: VersionPath, body: RegistryUpdate, ctx: CTX) -> Any:
    return registry(ctx.store, ctx.principal, "write").update_version(
        name, version, description=body.description, owner=body.owner, tags=body.tags)


@router.get("/models/{name}/aliases/{alias}", response_model=int)
def alias_version(name: str, alias: str, ctx: CTX) -> Any:
    """The version number the alias points at now."""
    return registry(ctx.store, ctx.principal).alias_version(name, alias)


@router.put("/models/{name}/aliases/{alias}", response_model=Transition)
def set_alias(name: str, alias: str, body: AliasIn, ctx: CTX) -> Any:
    """Move the alias (409 CONFLICT if another writer moved it, or it is not at `expected`); recorded."""
    expected = {"expected": body.expected} if "expected" in body.model_fields_set else {}
    return registry(ctx.store, ctx.principal, "write").set_alias(name, alias, body.version, body.reason, **expected)


@router.delete("/models/{name}/aliases/{alias}", response_model=Transition)
def delete_alias(name: str, alias: str, ctx: CTX, reason: Optional[str] = None) -> Any:
    return registry(ctx.store, ctx.principal, "write").delete_alias(name, alias, reason)


@router.get("/models/{name}/history", response_model=list[Transition])
def history(name: str, ctx: CTX, alias: Optional[str] = None) -> Any:
    """Every move of the model's aliases (or of one), oldest first: who, when, from, to, why."""
    return registry(ctx.store, ctx.principal).history(name, alias)


@router.get("/models/{name}/card", response_model=ModelCard)
def model_card(name: str, ctx: CTX, version: Optional[Version] = None) -> Any:
    """The Markdown model card of a version (default: the latest)."""
    markdown = registry(ctx.store, ctx.principal).model_card(name, version)
    return {"name": name, "version": version, "markdown": markdown}


@router.get("/models/{name}/card.html", response_class=HTMLResponse)
def model_card_page(name: str, ctx: CTX, version: Optional[Version] = None) -> HTMLResponse:
    """The same card as a standalone HTML page (raw HTML in descriptions is shown as text, never run)."""
    return HTMLResponse(registry(ctx.store, ctx.principal).model_card(name, version, format="html"))
