"""`RemoteRegistry`: the model registry of a server, with `Registry`'s methods and return types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlkeep.lifecycle.entities import ModelVersion, RegisteredModel, Transition
from mlkeep.lifecycle.registry import parse_uri

if TYPE_CHECKING:
    from mlkeep.client._store import RemoteStore

_UNSET: Any = object()


class RemoteRegistry:
    """Registered models on a server: `remote_store.registry`."""

    def __init__(self, store: RemoteStore) -> None:
        self.store = store
        self.http = store.http

    @staticmethod
    def _path(name: str, rest: str = "") -> str:
        return f"/registry/models/{quote(name, safe='')}{rest}"

    # -- writing
    def register(self, name: str, source: str, description: str | None = None,
                 tags: Mapping[str, Any] | None = None, *, owner: str | None = None) -> ModelVersion:
        """The next version of `name` from a logged Model id, a commit id (prefix) or `repo@ref`."""
        parse_uri(name)  # the same InvalidInputError as locally, before a request
        body = {"source": source, "description": description, "owner": owner,
                "tags": {k: str(v) for k, v in (tags or {}).items()}}
        return ModelVersion.from_dict(self.http.post(self._path(name, "/versions"), body))

    def set_alias(self, name: str, alias: str, version: int, reason: str | None = None, *,
                  expected: int | None = _UNSET) -> Transition:
        """Point `alias` at `version` (compare-and-swap; `ConflictError` if it moved or is not at `expected`)."""
        body: dict[str, Any] = {"version": version, "reason": reason}
        if expected is not _UNSET:
            body["expected"] = expected
        return Transition.from_dict(self.http.request("PUT", self._path(name, f"/aliases/{quote(alias, safe='')}"),
                                                      json=body))

    def delete_alias(self, name: str, alias: str, reason: str | None = None) -> Transition:
        params = {"reason": reason} if reason is not None else {}
        return Transition.from_dict(self.http.request("DELETE", self._path(name, f"/aliases/{quote(alias, safe='')}"),
                                                      params=params))

    def update_model(self, name: str, *, description: str | None = None, owner: str | None = None,
                     tags: Mapping[str, Any] | None = None) -> RegisteredModel:
        body = {"description": description, "owner": owner, "tags": _tags(tags)}
        return RegisteredModel.from_dict(self.http.request("PATCH", self._path(name), json=body))

    def update_version(self, name: str, version: int, *, description: str | None = None, owner: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> ModelVersion:
        body = {"description": description, "owner": owner, "tags": _tags(tags)}
        return ModelVersion.from_dict(self.http.request("PATCH", self._path(name, f"/versions/{version}"), json=body))

    # -- reading
    def get(self, name: str) -> RegisteredModel:
        return RegisteredModel.from_dict(self.http.get(self._path(name)))

    def list_models(self) -> list[RegisteredModel]:
        return self.search("")

    def search(self, filter: str = "") -> list[RegisteredModel]:
        """Registered models matching e.g. `name like 'digits%'`, by name (the server parses the filter)."""
        return [RegisteredModel.from_dict(m) for m in self.http.get("/registry/models", filter=filter)]

    def versions(self, name: str) -> list[ModelVersion]:
        return [ModelVersion.from_dict(v) for v in self.http.get(self._path(name, "/versions"))]

    def get_version(self, name: str, version: int) -> ModelVersion:
        return ModelVersion.from_dict(self.http.get(self._path(name, f"/versions/{version}")))

    def resolve(self, uri: str) -> ModelVersion:
        """The version `models:/NAME@ALIAS`, `models:/NAME/N` or `models:/NAME` (latest) names."""
        parse_uri(uri)
        return ModelVersion.from_dict(self.http.get("/registry/resolve", uri=uri))

    def alias_version(self, name: str, alias: str) -> int:
        return int(self.http.get(self._path(name, f"/aliases/{quote(alias, safe='')}")))

    def history(self, name: str, alias: str | None = None) -> list[Transition]:
        return [Transition.from_dict(t) for t in self.http.get(self._path(name, "/history"), alias=alias)]

    def model_card(self, name: str, version: int | None = None) -> str:
        """The Markdown model card of a version (default: the latest), written by the server."""
        return str(self.http.get(self._path(name, "/card"), version=version)["markdown"])

    def load(self, uri: str, *, into: Any = None) -> Any:
        """The model object of the version `uri` names, downloaded (load only from a server you trust)."""
        return self.load_version(self.resolve(uri), into=into)

    def load_version(self, version: ModelVersion, *, into: Any = None) -> Any:
        from mlkeep.lifecycle.registry import load_version  # the same rule as locally

        return load_version(self.store, version, into=into)


def _tags(tags: Mapping[str, Any] | None) -> dict[str, str] | None:
    return None if tags is None else {k: "" if v is None else str(v) for k, v in tags.items()}
