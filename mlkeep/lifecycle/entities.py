"""The registry's entities, as frozen dataclasses (database rows never leave the registry module)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlkeep.tracking.entities import Entity


def utc(ms: int) -> str:
    """A millisecond timestamp as `YYYY-MM-DD HH:MM:SS UTC` (cards and reports are read across time zones)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class RegisteredModel(Entity):
    """A named model whose versions are numbered 1, 2, ...; `aliases` maps alias to version."""

    id: str
    name: str
    creation_time: int
    last_updated_time: int
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None


@dataclass(frozen=True)
class ModelVersion(Entity):
    """Version `version` of registered model `name`, made from a logged Model or a repository commit.

    `source_kind` is "model" or "commit"; `source` the model id or `repo@commit_id`;
    `model_id` the Model record predictions and evaluations of this version hang off.
    """

    id: str
    name: str
    version: int
    source_kind: str
    source: str
    model_id: str
    creation_time: int
    run_id: str | None = None
    dataset_id: str | None = None
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Transition(Entity):
    """One move of an alias: `from_version` None when it was created, `to_version` None when deleted."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    user: str | None
    time: int
    reason: str | None = None
