"""MLflow's model registry calls over `store.registry`.

Versions are made from MLflow LoggedModels (`models:/m-...` sources or a
`model_id`); aliases move through the registry's compare-and-swap and are
recorded as transitions.

Stages (MLflow's deprecated predecessor of aliases) are aliases here: a
version in stage Staging or Production is the one the alias `staging` or
`production` points at, and a stage transition moves that alias (recorded in
the alias history like any move). An alias points at one version, so moving a
version into a stage takes the stage from the version that had it, whatever
`archive_existing_versions` says; moving it to None or Archived removes its
stage aliases, and it then reads as stage "None" (Archived is not a state
mlkeep keeps).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlkeep.compat.mlflow import logged_models, messages
from mlkeep.errors import InvalidInputError, NotFoundError, UnsupportedError
from mlkeep.lifecycle.entities import ModelVersion

if TYPE_CHECKING:
    from mlkeep.store import Store

_VERSION_CLAUSE = re.compile(r"^\s*(?P<field>name|run_id)\s*=\s*(?P<q>['\"])(?P<value>.*?)(?P=q)\s*$", re.I)


def create_model(store: Store, name: str, description: str | None, tags: Mapping[str, str]) -> dict[str, Any]:
    """CreateRegisteredModel: a registered model with no versions yet; `ConflictError` if the name is taken."""
    return messages.registered_model(store.registry.create(name, description=description, tags=tags or None))


# The client hides prompts (MLflow 3 stores them as registered models); mlkeep has none, so it holds always.
_NOT_PROMPT = re.compile(r"\s*(?:\band\s+)?tags?\.`?mlflow\.prompt\.is_prompt`?\s*!=\s*'true'\s*(?:and\b)?", re.I)


def model_filter(filter_string: str | None) -> str:
    """An MLflow registered-model filter in the registry's terms (`tag.` is `tags.`; the prompt clause dropped)."""
    text = _NOT_PROMPT.sub(" ", filter_string or "").strip()
    return re.sub(r"(?<![\w.])tag\.", "tags.", text)


def registered_model(store: Store, name: str) -> dict[str, Any]:
    rm = store.registry.get(name)
    latest = store.registry.get_version(name, rm.latest_version) if rm.latest_version else None
    return messages.registered_model(rm, latest)


def create_version(store: Store, body: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
    """CreateModelVersion from a LoggedModel (its id, or a `models:/m-...` source)."""
    source = str(body.get("source") or "")
    model_id = source_model_id(body.get("model_id"), source)
    if not model_id:
        raise UnsupportedError(
            f"mlkeep registers models logged with MLflow 3's log_model (source models:/m-...), not {source!r}."
        )
    logged_models.get(store, model_id)  # NotFoundError unless MLflow logged it
    version = store.registry.register(str(body["name"]), model_id, description=body.get("description"),
                                      tags=tags or None)
    return messages.model_version(version)


def source_model_id(model_id: str | None, source: str | None) -> str | None:
    """The LoggedModel a version comes from: its `model_id`, else the id in a `models:/m-...` source."""
    if model_id:
        return model_id
    return source[len("models:/"):] if source and source.startswith("models:/m-") else None


def search_versions(store: Store, filter_string: str | None) -> list[ModelVersion]:
    """Versions matching `name = '...'` and/or `run_id = '...'` (AND), newest first."""
    wanted: dict[str, str] = {}
    for clause in re.split(r"\s+and\s+", (filter_string or "").strip(), flags=re.I):
        if not clause:
            continue
        m = _VERSION_CLAUSE.match(clause)
        if m is None:
            raise UnsupportedError(f"mlkeep's MLflow API filters model versions by name = and run_id =, "
                                   f"not {clause!r}.")
        wanted[m["field"].lower()] = m["value"]
    names = [wanted["name"]] if "name" in wanted else [rm.name for rm in store.registry.list_models()]
    found = [v for n in names for v in store.registry.versions(n)]
    if "run_id" in wanted:
        found = [v for v in found if v.run_id == wanted["run_id"]]
    return sorted(found, key=lambda v: (v.name, -v.version))


def download_uri(store: Store, name: str, version: int) -> str:
    """Where the client downloads a version's files: its LoggedModel's artifact folder."""
    v = store.registry.get_version(name, version)
    try:
        model = logged_models.get(store, v.model_id)
    except NotFoundError:
        raise UnsupportedError(
            f"Version {version} of {name!r} was made in mlkeep, not logged through MLflow: load it with "
            f"mlkeep.open(...).load_model('models:/{name}/{version}')."
        ) from None
    return str(model["info"]["artifact_uri"])


def version_number(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"A model version is a number, not {value!r}.") from None
    return number


STAGE_ALIASES = {"staging": "staging", "production": "production"}  # MLflow stage (lower case) -> alias
NO_STAGE = ("none", "archived")


def transition_stage(store: Store, name: str, version: int, stage: str) -> ModelVersion:
    """TransitionModelVersionStage as alias moves (see the module docstring)."""
    key = str(stage or "").strip().lower()
    if key not in STAGE_ALIASES and key not in NO_STAGE:
        raise InvalidInputError(f"A stage is one of None, Staging, Production, Archived, not {stage!r}.")
    target = STAGE_ALIASES.get(key)
    for alias in store.registry.get_version(name, version).aliases:  # a version is in one stage at a time
        if alias in STAGE_ALIASES.values() and alias != target:
            store.registry.delete_alias(name, alias, reason=f"MLflow stage {stage}")
    if target is not None:
        store.registry.set_alias(name, target, version, reason=f"MLflow stage {stage}")
    return store.registry.get_version(name, version)


def latest_versions(store: Store, name: str, stages: list[str]) -> list[ModelVersion]:
    """GetLatestVersions: per stage asked for (every stage when none is), the newest version in it."""
    wanted = {str(s).strip().lower() for s in stages} or {*STAGE_ALIASES, "none"}
    unknown = wanted - {*STAGE_ALIASES, *NO_STAGE}
    if unknown:
        raise InvalidInputError(f"A stage is one of None, Staging, Production, Archived, not {sorted(unknown)[0]!r}.")
    newest: dict[str, ModelVersion] = {}
    for v in store.registry.versions(name):  # oldest first: the last one seen per stage is the newest
        newest[messages.stage(v).lower()] = v
    return sorted((v for k, v in newest.items() if k in wanted), key=lambda v: v.version)
