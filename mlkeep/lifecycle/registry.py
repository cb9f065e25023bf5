"""The model registry: named models, numbered versions, aliases that move by compare-and-swap.

A version is made from a logged Model (its id) or a repository commit (its id,
a unique prefix, or `repo@ref`). Either way it points at a Model record, so
predictions and evaluations of the version hang off one id; a commit gets a
metadata-only Model record (no serialized copy: the weights stay in the
tensor store). Aliases are the only mutable state: each move is an
`UPDATE ... WHERE version = <what we read>` plus a transition row, in one
transaction, so two movers never both win and no move goes unrecorded.

URIs follow MLflow: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `models:/NAME`
(the latest version); the `models:/` prefix is optional in this API.
"""

from __future__ import annotations

import getpass
import importlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from mlkeep.errors import ConflictError, FilterSyntaxError, InvalidInputError, NotFoundError
from mlkeep.ids import new_id, now_ms
from mlkeep.lifecycle.entities import ModelVersion, RegisteredModel, Transition
from mlkeep.metadata.tables import (
    alias_transitions,
    commits,
    links,
    model_aliases,
    model_versions,
    registered_models,
    registry_tags,
    repositories,
)
from mlkeep.tracking.lineage import add_links

if TYPE_CHECKING:
    from mlkeep.store import Store

URI_PREFIX = "models:/"
# A deleted version keeps its row, marked so, so that its number is never given to another model: a
# `models:/NAME/N` someone wrote down must not silently start meaning something else.
DELETED = "deleted"
LATEST = "latest"  # reserved alias: always the newest version
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,249}$")
_UNSET: Any = object()
_CLAUSE = re.compile(
    r"^\s*(?P<field>name|owner|description|tags\.[A-Za-z0-9_.\-]+|tags\.`[^`]+`)\s*"
    r"(?P<op>=|!=|like|ilike)\s*'(?P<value>(?:[^']|'')*)'\s*$",
    re.IGNORECASE,
)


def parse_uri(uri: str) -> tuple[str, int | None, str | None]:
    """(name, version, alias) of `models:/NAME@ALIAS`, `models:/NAME/3` or `models:/NAME` (prefix optional)."""
    if not isinstance(uri, str) or not uri:
        raise InvalidInputError("A registered model reference is `models:/NAME@ALIAS` or `models:/NAME/VERSION`.")
    rest = uri[len(URI_PREFIX):] if uri.startswith(URI_PREFIX) else uri
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if not alias:
            raise InvalidInputError(f"{uri!r} names no alias after '@'.")
        return _check_name(name), None, alias
    if "/" in rest:
        name, _, number = rest.partition("/")
        if not number.isdigit() or int(number) < 1:
            raise InvalidInputError(f"{uri!r}: a version is a number from 1, not {number!r}.")
        return _check_name(name), int(number), None
    return _check_name(rest), None, None


def _check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InvalidInputError(
            f"{name!r} is not a registered model name (letters, digits, '_', '.', '-'; at most 250)."
        )
    return name


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == LATEST:
        raise InvalidInputError(
            f"{alias!r} is not an alias: start with a letter, use letters, digits, '_', '.', '-'; "
            f"{LATEST!r} is reserved for the newest version."
        )
    return alias


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return None


class Registry:
    """Registered models of one store: `store.registry`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # ---------------------------------------------------------------- writing
    def create(
        self, name: str, description: str | None = None, tags: Mapping[str, Any] | None = None, *,
        owner: str | None = None,
    ) -> RegisteredModel:
        """A registered model with no versions yet (`register` makes one on first use otherwise).

        Raises `ConflictError` if the name is taken: creating is a claim on the name.
        """
        _check_name(name)
        with self.db.begin() as conn:
            if conn.execute(select(registered_models.c.id).where(registered_models.c.name == name)).scalar():
                raise ConflictError(f"Registered model {name!r} already exists.")
            self._ensure_model(conn, name, owner)
        if description is not None or tags:
            self.update_model(name, description=description, tags=tags)
        return self.get(name)

    def register(
        self,
        name: str,
        source: str,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
        *,
        owner: str | None = None,
    ) -> ModelVersion:
        """Make the next version of `name` (created on first use) from a Model id or a commit.

        `source` is a logged Model's id, a commit id (or unique prefix of at
        least 4 hex digits) of any repository, or `repo@ref` (branch, tag,
        `main~1`). The version is linked in lineage (`registered_as`) to its
        source. Raises `NotFoundError` when the source names nothing.
        """
        _check_name(name)
        tag_rows = _tags(tags)
        kind, source_id, model_id, run_id, dataset_id, pending = self._source(source)
        for attempt in range(5):  # PostgreSQL: a concurrent register may take the same number
            try:
                with self.db.begin() as conn:
                    if pending is not None:
                        model_id = self._commit_model(conn, pending)
                    rm_id = self._ensure_model(conn, name, owner)
                    number = (conn.execute(select(func.max(model_versions.c.version))
                                           .where(model_versions.c.registered_model_id == rm_id)).scalar() or 0) + 1
                    version = ModelVersion(
                        id=new_id(), name=name, version=number, source_kind=kind, source=source_id,
                        model_id=str(model_id), creation_time=now_ms(), run_id=run_id, dataset_id=dataset_id,
                        description=description, owner=owner or _user(), tags=tag_rows,
                    )
                    conn.execute(model_versions.insert(), [{
                        "id": version.id, "registered_model_id": rm_id, "name": name, "version": number,
                        "source_kind": kind, "source": source_id, "model_id": model_id, "run_id": run_id,
                        "dataset_id": dataset_id, "description": description, "owner": version.owner,
                        "creation_time": version.creation_time,
                    }])
                    _write_tags(conn, version.id, tag_rows)
                    src = source_id.rpartition("@")[2]
                    add_links(conn, [(src, kind, version.id, "model_version", "registered_as")])
                    conn.execute(registered_models.update().where(registered_models.c.id == rm_id)
                                 .values(last_updated_time=version.creation_time))
                return version
            except IntegrityError:
                if attempt == 4:
                    raise ConflictError(f"Could not number a new version of {name!r}: too many concurrent registers.")
        raise AssertionError("unreachable")

    def set_alias(
        self, name: str, alias: str, version: int, reason: str | None = None, *, expected: int | None = _UNSET
    ) -> Transition:
        """Point `alias` of `name` at `version` and record the move (who, when, from, to, why).

        The move is a compare-and-swap: if another writer moves the alias
        between our read and our write, `ConflictError`; with `expected`, the
        alias must point there now (None: must not exist) or `ConflictError`.
        """
        _check_alias(alias)
        with self.db.begin() as conn:
            rm_id = self._model_id(conn, name)
            self._version_row(conn, rm_id, name, version)
            current = _alias_version(conn, rm_id, alias)
            if expected is not _UNSET and current != expected:
                raise ConflictError(f"Alias {alias!r} of {name!r} points at {current}, not {expected}.")
            now = now_ms()
            if current is None:
                try:
                    with conn.begin_nested():
                        conn.execute(model_aliases.insert(), [{"registered_model_id": rm_id, "alias": alias,
                                                               "version": version, "update_time": now}])
                except IntegrityError:
                    raise ConflictError(f"Alias {alias!r} of {name!r} was just set by another writer.") from None
            else:
                moved = conn.execute(
                    model_aliases.update()
                    .where(model_aliases.c.registered_model_id == rm_id, model_aliases.c.alias == alias,
                           model_aliases.c.version == current)
                    .values(version=version, update_time=now)
                ).rowcount
                if moved != 1:
                    raise ConflictError(f"Alias {alias!r} of {name!r} moved while you moved it; look and try again.")
            return self._transition(conn, rm_id, name, alias, current, version, reason, now)

    def delete_alias(self, name: str, alias: str, reason: str | None = None) -> Transition:
        """Remove `alias` of `name` (recorded as a transition to None); `NotFoundError` if it is not set."""
        with self.db.begin() as conn:
            rm_id = self._model_id(conn, name)
            current = _alias_version(conn, rm_id, alias)
            gone = conn.execute(model_aliases.delete().where(
                model_aliases.c.registered_model_id == rm_id, model_aliases.c.alias == alias,
                model_aliases.c.version == current)).rowcount
            if current is None or gone != 1:
                raise NotFoundError(f"Registered model {name!r} has no alias {alias!r}.")
            return self._transition(conn, rm_id, name, alias, current, None, reason, now_ms())

    def update_model(
        self, name: str, *, description: str | None = None, owner: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        """Set the description, owner and/or tags (merged; an empty value deletes a tag) of `name`."""
        with self.db.begin() as conn:
            rm_id = self._model_id(conn, name)
            values: dict[str, Any] = {"last_updated_time": now_ms()}
            if description is not None:
                values["description"] = description
            if owner is not None:
                values["owner"] = owner
            conn.execute(registered_models.update().where(registered_models.c.id == rm_id).values(**values))
            _write_tags(conn, rm_id, _tags(tags, allow_empty=True))
        return self.get(name)

    def update_version(
        self, name: str, version: int, *, description: str | None = None, owner: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Set the description, owner and/or tags (merged; an empty value deletes a tag) of a version."""
        with self.db.begin() as conn:
            row = self._version_row(conn, self._model_id(conn, name), name, version)
            values = {k: v for k, v in (("description", description), ("owner", owner)) if v is not None}
            if values:
                conn.execute(model_versions.update().where(model_versions.c.id == row.id).values(**values))
            _write_tags(conn, row.id, _tags(tags, allow_empty=True))
        return self.get_version(name, version)

    def rename(self, name: str, new_name: str) -> RegisteredModel:
        """Give registered model `name` a new name; versions, aliases and history move with it.

        `models:/OLD/...` URIs stop resolving. Raises `ConflictError` if `new_name` is taken.
        """
        _check_name(new_name)
        with self.db.begin() as conn:
            rm_id = self._model_id(conn, name)
            if conn.execute(select(registered_models.c.id).where(registered_models.c.name == new_name)).scalar():
                raise ConflictError(f"Registered model {new_name!r} already exists.")
            conn.execute(registered_models.update().where(registered_models.c.id == rm_id)
                         .values(name=new_name, last_updated_time=now_ms()))
            conn.execute(model_versions.update().where(model_versions.c.registered_model_id == rm_id)
                         .values(name=new_name))
        return self.get(new_name)

    def delete_version(self, name: str, version: int, reason: str | None = None) -> None:
        """Delete a version: hidden from every read, its aliases removed (each move recorded), its number
        never reused. The Model it was made from stays (it is its run's model). `NotFoundError` if absent."""
        with self.db.begin() as conn:
            rm_id = self._model_id(conn, name)
            row = self._version_row(conn, rm_id, name, version)
            now = now_ms()
            for alias in conn.execute(select(model_aliases.c.alias).where(
                    model_aliases.c.registered_model_id == rm_id, model_aliases.c.version == version)).scalars():
                conn.execute(model_aliases.delete().where(model_aliases.c.registered_model_id == rm_id,
                                                          model_aliases.c.alias == alias))
                self._transition(conn, rm_id, name, alias, version, None, reason or "version deleted", now)
            conn.execute(model_versions.update().where(model_versions.c.id == row.id).values(source_kind=DELETED))
            conn.execute(registry_tags.delete().where(registry_tags.c.entity_id == row.id))
            conn.execute(links.delete().where(links.c.dst_id == row.id, links.c.relation == "registered_as"))
            conn.execute(registered_models.update().where(registered_models.c.id == rm_id)
                         .values(last_updated_time=now))

    def delete(self, name: str) -> None:
        """Delete registered model `name` with its versions, aliases, tags and alias history; the name is free
        again. The Models and commits its versions were made from stay. `NotFoundError` if absent."""
        with self.db.begin() as conn:
            rm_id = self._model_id(conn, name)
            version_ids = list(conn.execute(select(model_versions.c.id)
                                            .where(model_versions.c.registered_model_id == rm_id)).scalars())
            conn.execute(links.delete().where(links.c.dst_id.in_(version_ids), links.c.relation == "registered_as"))
            conn.execute(registry_tags.delete().where(registry_tags.c.entity_id.in_([rm_id, *version_ids])))
            for table in (alias_transitions, model_aliases, model_versions):
                conn.execute(table.delete().where(table.c.registered_model_id == rm_id))
            conn.execute(registered_models.delete().where(registered_models.c.id == rm_id))

    # ---------------------------------------------------------------- reading
    def get(self, name: str) -> RegisteredModel:
        """The registered model `name` with its tags, aliases and latest version number."""
        with self.db.connect() as conn:
            row = conn.execute(select(registered_models).where(registered_models.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"No registered model named {name!r}. List them with `mlkeep registry list`.")
            return self._registered(conn, [row])[0]

    def list_models(self) -> list[RegisteredModel]:
        """Every registered model, by name."""
        return self.search("")

    def search(self, filter: str = "") -> list[RegisteredModel]:
        """Registered models matching e.g. `name like 'digits%' and tags.team = 'vision'`, by name.

        Clauses on `name`, `owner`, `description` and `tags.KEY` with `=`, `!=`,
        `like`, `ilike`, joined by `and`. Raises `FilterSyntaxError` for others.
        """
        query = select(registered_models).order_by(registered_models.c.name)
        for cond in _conditions(filter):
            query = query.where(cond)
        with self.db.connect() as conn:
            return self._registered(conn, conn.execute(query).all())

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of `name`, oldest first."""
        with self.db.connect() as conn:
            rm_id = self._model_id(conn, name)
            rows = conn.execute(select(model_versions).where(model_versions.c.registered_model_id == rm_id,
                                                             model_versions.c.source_kind != DELETED)
                                .order_by(model_versions.c.version)).all()
            return self._versions(conn, rm_id, rows)

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self.db.connect() as conn:
            rm_id = self._model_id(conn, name)
            return self._versions(conn, rm_id, [self._version_row(conn, rm_id, name, version)])[0]

    def resolve(self, uri: str) -> ModelVersion:
        """The version `models:/NAME@ALIAS`, `models:/NAME/N` or `models:/NAME` (latest) names."""
        name, number, alias = parse_uri(uri)
        if alias is not None and alias != LATEST:
            return self.get_version(name, self.alias_version(name, alias))
        if number is None:
            with self.db.connect() as conn:
                number = conn.execute(select(func.max(model_versions.c.version))
                                      .where(model_versions.c.registered_model_id == self._model_id(conn, name),
                                             model_versions.c.source_kind != DELETED)).scalar()
            if number is None:
                raise NotFoundError(f"Registered model {name!r} has no versions.")
        return self.get_version(name, number)

    def alias_version(self, name: str, alias: str) -> int:
        """The version `alias` points at now: one indexed query (what a server polls)."""
        with self.db.connect() as conn:
            found = conn.execute(
                select(model_aliases.c.version).join(
                    registered_models, registered_models.c.id == model_aliases.c.registered_model_id)
                .where(registered_models.c.name == name, model_aliases.c.alias == alias)
            ).scalar()
            if found is None:
                self._model_id(conn, name)
                raise NotFoundError(f"Registered model {name!r} has no alias {alias!r}.")
            return int(found)

    def history(self, name: str, alias: str | None = None) -> list[Transition]:
        """Every move of the aliases of `name` (or of one alias), oldest first."""
        with self.db.connect() as conn:
            query = (select(alias_transitions).where(alias_transitions.c.registered_model_id == self._model_id(conn, name))
                     .order_by(alias_transitions.c.seq))
            if alias is not None:
                query = query.where(alias_transitions.c.alias == alias)
            return [Transition(name=name, alias=r.alias, from_version=r.from_version, to_version=r.to_version,
                               user=r.user_name, time=r.time, reason=r.reason) for r in conn.execute(query).all()]

    def load(self, uri: str, *, into: Any = None) -> Any:
        """The model object of the version `uri` names, verified as its source's loader verifies it.

        A torch commit is loaded into `into` when given, else into a new
        instance of the committed class built without arguments (raises
        `InvalidInputError` if that class cannot be imported or built so).
        """
        return self.load_version(self.resolve(uri), into=into)

    def load_version(self, version: ModelVersion, *, into: Any = None) -> Any:
        return load_version(self.store, version, into=into)

    def model_card(self, ref: str, version: int | None = None, *, format: str = "md") -> str:
        """The model card (Markdown, or HTML with `format="html"`) of the version `ref` names
        (`NAME@ALIAS`, `NAME/3`; `NAME`: the latest, or `version`), from what the store knows."""
        from mlkeep.lifecycle.cards import model_card

        return model_card(self.store, ref, version, format=format)

    # ---------------------------------------------------------------- internals
    def _source(self, source: str) -> tuple[str, str, str | None, str | None, str | None, Any]:
        """(kind, source, model_id, run_id, dataset_id, commit needing a Model record) of a source reference."""
        if not isinstance(source, str) or not source:
            raise InvalidInputError("Register a logged Model id, a commit id, or `repo@ref`.")
        if "@" in source:
            repo_name, _, ref = source.rpartition("@")
            commit = self.store.repo(repo_name).get(ref)
        else:
            from mlkeep.tracking.models import get_model

            try:
                model = get_model(self.db, source)
                return "model", model.id, model.id, model.run_id, model.trained_on_dataset_id, None
            except NotFoundError:
                commit = self._find_commit(source)
        dataset = commit.datasets[0] if commit.datasets else None
        return "commit", f"{commit.repository}@{commit.id}", None, commit.run_id, dataset, commit

    def _find_commit(self, prefix: str) -> Any:
        if not re.fullmatch(r"[0-9a-f]{4,64}", prefix):
            raise NotFoundError(f"{prefix!r} names no logged model and is not a commit id; use `repo@ref`.")
        with self.db.connect() as conn:
            rows = conn.execute(select(commits.c.id, repositories.c.name)
                                .join(repositories, repositories.c.id == commits.c.repo_id)
                                .where(commits.c.id.startswith(prefix)).limit(2)).all()
        if not rows:
            raise NotFoundError(f"{prefix!r} names no logged model and no commit.")
        if len(rows) > 1:
            raise InvalidInputError(f"Commit prefix {prefix!r} is ambiguous; give more digits or `repo@ref`.")
        return self.store.repo(rows[0].name).get(rows[0].id)

    def _commit_model(self, conn: Connection, commit: Any) -> str:
        """The Model record of a commit (made once, metadata only: the weights stay in the tensor store)."""
        found = conn.execute(select(links.c.dst_id).where(
            links.c.src_id == commit.id, links.c.relation == "recorded_as")).scalar()
        if found is not None:
            return str(found)
        from mlkeep.tracking.entities import Model
        from mlkeep.tracking.models import insert_model

        algorithm = (commit.architecture or commit.kind).splitlines()[0].rpartition(".")[2] or commit.kind
        model = Model(
            id=new_id(), name=f"{commit.repository}@{commit.id[:12]}", learning_algorithm=algorithm,
            creation_time=commit.time, run_id=commit.run_id,
            trained_on_dataset_id=commit.datasets[0] if commit.datasets else None,
            framework=commit.kind, flavor="commit", object=None,
        )
        insert_model(conn, model, {"commit": commit.id, "repository": commit.repository})
        add_links(conn, [(commit.id, "commit", model.id, "model", "recorded_as")])
        return model.id

    def _ensure_model(self, conn: Connection, name: str, owner: str | None) -> str:
        from mlkeep.metadata.upsert import insert_for

        now = now_ms()
        conn.execute(insert_for(conn)(registered_models).on_conflict_do_nothing(index_elements=["name"]), [{
            "id": new_id(), "name": name, "owner": owner or _user(), "creation_time": now, "last_updated_time": now,
        }])
        return self._model_id(conn, name)

    def _model_id(self, conn: Connection, name: str) -> str:
        found = conn.execute(select(registered_models.c.id).where(registered_models.c.name == name)).scalar()
        if found is None:
            raise NotFoundError(f"No registered model named {name!r}. List them with `mlkeep registry list`.")
        return str(found)

    def _version_row(self, conn: Connection, rm_id: str, name: str, version: int) -> Any:
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidInputError(f"A version is a number from 1, not {version!r}.")
        row = conn.execute(select(model_versions).where(
            model_versions.c.registered_model_id == rm_id, model_versions.c.version == version,
            model_versions.c.source_kind != DELETED)).first()
        if row is None:
            raise NotFoundError(f"Registered model {name!r} has no version {version}.")
        return row

    def _transition(self, conn: Connection, rm_id: str, name: str, alias: str, old: int | None, new: int | None,
                    reason: str | None, now: int) -> Transition:
        t = Transition(name=name, alias=alias, from_version=old, to_version=new, user=_user(), time=now, reason=reason)
        conn.execute(alias_transitions.insert(), [{
            "registered_model_id": rm_id, "alias": alias, "from_version": old, "to_version": new,
            "user_name": t.user, "time": now, "reason": reason,
        }])
        conn.execute(registered_models.update().where(registered_models.c.id == rm_id).values(last_updated_time=now))
        return t

    def _registered(self, conn: Connection, rows: Sequence[Any]) -> list[RegisteredModel]:
        ids = [r.id for r in rows]
        tags = _read_tags(conn, ids)
        aliases: dict[str, dict[str, int]] = {}
        for a in conn.execute(select(model_aliases).where(model_aliases.c.registered_model_id.in_(ids))
                              .order_by(model_aliases.c.alias)).all():
            aliases.setdefault(a.registered_model_id, {})[a.alias] = a.version
        latest = dict(conn.execute(select(model_versions.c.registered_model_id, func.max(model_versions.c.version))
                                   .where(model_versions.c.registered_model_id.in_(ids),
                                          model_versions.c.source_kind != DELETED)
                                   .group_by(model_versions.c.registered_model_id)).all())
        return [RegisteredModel(id=r.id, name=r.name, creation_time=r.creation_time,
                                last_updated_time=r.last_updated_time, description=r.description, owner=r.owner,
                                tags=tags.get(r.id, {}), aliases=aliases.get(r.id, {}), latest_version=latest.get(r.id))
                for r in rows]

    def _versions(self, conn: Connection, rm_id: str, rows: Sequence[Any]) -> list[ModelVersion]:
        tags = _read_tags(conn, [r.id for r in rows])
        by_version: dict[int, list[str]] = {}
        for a in conn.execute(select(model_aliases).where(model_aliases.c.registered_model_id == rm_id)
                              .order_by(model_aliases.c.alias)).all():
            by_version.setdefault(a.version, []).append(a.alias)
        return [ModelVersion(id=r.id, name=r.name, version=r.version, source_kind=r.source_kind, source=r.source,
                             model_id=r.model_id, creation_time=r.creation_time, run_id=r.run_id,
                             dataset_id=r.dataset_id, description=r.description, owner=r.owner,
                             tags=tags.get(r.id, {}), aliases=by_version.get(r.version, []))
                for r in rows]


def _alias_version(conn: Connection, rm_id: str, alias: str) -> int | None:
    return conn.execute(select(model_aliases.c.version).where(
        model_aliases.c.registered_model_id == rm_id, model_aliases.c.alias == alias)).scalar()


def _tags(tags: Mapping[str, Any] | None, allow_empty: bool = False) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInputError("Tags are a mapping of names to values.")
    out = {}
    for k, v in tags.items():
        if not isinstance(k, str) or not k or len(k) > 250:
            raise InvalidInputError(f"A tag name is a non-empty string of at most 250 characters, not {k!r}.")
        out[k] = "" if v is None and allow_empty else str(v)
    return out


def _write_tags(conn: Connection, entity_id: str, tags: dict[str, str]) -> None:
    from mlkeep.metadata.upsert import insert_for

    for key, value in tags.items():
        if value == "":
            conn.execute(registry_tags.delete().where(registry_tags.c.entity_id == entity_id,
                                                      registry_tags.c.key == key))
            continue
        stmt = insert_for(conn)(registry_tags).values(entity_id=entity_id, key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=["entity_id", "key"], set_={"value": value}))


def _read_tags(conn: Connection, ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    if ids:
        for t in conn.execute(select(registry_tags).where(registry_tags.c.entity_id.in_(ids))
                              .order_by(registry_tags.c.key)).all():
            out.setdefault(t.entity_id, {})[t.key] = t.value
    return out


def _conditions(filter: str) -> list[Any]:
    """SQL conditions of a registry filter (see `Registry.search`)."""
    if not isinstance(filter, str):
        raise FilterSyntaxError("A filter is a string such as \"name like 'digits%'\".")
    out = []
    pos = 0
    for clause in re.split(r"\s+and\s+", filter.strip(), flags=re.IGNORECASE) if filter.strip() else []:
        m = _CLAUSE.match(clause)
        if m is None:
            raise FilterSyntaxError(
                f"Cannot read {clause.strip()!r}: write `name|owner|description|tags.KEY` then "
                "=, !=, like or ilike, then a 'quoted' value, joined by `and`.", filter.find(clause, pos))
        pos = filter.find(clause, pos) + len(clause)
        field, op, value = m.group("field"), m.group("op").lower(), m.group("value").replace("''", "'")
        if field.lower().startswith("tags."):
            key = field[5:].strip("`")
            column = registry_tags.c.value
            cond = _compare(column, op, value)
            sub = select(registry_tags.c.entity_id).where(registry_tags.c.key == key, cond)
            out.append(registered_models.c.id.in_(sub))
        else:
            out.append(_compare(registered_models.c[field.lower()], op, value))
    return out


def _compare(column: Any, op: str, value: str) -> Any:
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "like":
        return column.like(value)
    return func.lower(column).like(value.lower())


def load_version(store: Any, version: ModelVersion, *, into: Any = None) -> Any:
    """The model object of `version` from `store` (a local `Store` or a remote one: both have `load_model`
    and `repo`): its logged model, or its commit checked out (a torch commit into `into` or a new
    instance of the committed class)."""
    if version.source_kind == "model":
        return store.load_model(version.source)
    repo_name, _, commit_id = version.source.rpartition("@")
    repo = store.repo(repo_name)
    commit = repo.get(commit_id)
    if commit.kind == "torch" and into is None:
        into = construct_module(commit.architecture)
    return repo.checkout(commit_id, into=into)


def construct_module(architecture: str | None) -> Any:
    """A new instance of the class a torch commit recorded, built without arguments."""
    path = (architecture or "").splitlines()[0] if architecture else ""
    module_name, _, qualname = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj()
    except Exception as exc:
        raise InvalidInputError(
            f"Cannot build the committed module {path or '(unknown class)'} without arguments ({exc}); "
            "load it with `into=` an instance of the model."
        ) from exc

