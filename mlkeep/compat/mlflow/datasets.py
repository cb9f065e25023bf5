"""MLflow datasets (LogInputs, DatasetInput messages) as mlkeep Datasets linked into runs.

An MLflow dataset is a description only (name, digest, source, schema,
profile); it becomes an mlkeep Dataset record without content, the same record
for the same name, digest and source. Its input tag `mlflow.data.context`
("training", "eval", ...) becomes the lineage relation of the link into the
run, as mlkeep's own `log_dataset(context=...)` does; without one the relation
is "input". So `datasets.name`, `datasets.digest` and `datasets.context`
search the same way whichever API logged the dataset, and datasets logged
through mlkeep show up in MLflow's view of a run too (digest: their fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable, literal_column, select

from mlkeep.metadata.id_lists import among, fetch
from mlkeep.errors import InvalidInputError, UnsupportedError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata.tables import datasets, links
from mlkeep.tracking import runs
from mlkeep.tracking.datasets import get_dataset, insert_dataset
from mlkeep.tracking.entities import Dataset
from mlkeep.tracking.lineage import add_links

if TYPE_CHECKING:
    from mlkeep.store import Store

CONTEXT_TAG = "mlflow.data.context"
DEFAULT_RELATION = "input"
MAX_RELATION = 32  # the width of links.relation
FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")


def log_inputs(store: Store, run_id: str, inputs: Sequence[Mapping[str, Any]] | None) -> None:
    """LogInputs: each dataset recorded (once per identity) and linked into the run under its context.

    Everything is checked before anything is written; an input tag other than the context is refused
    (an mlkeep link carries one relation, not tags).
    """
    runs.require_run(store.db, run_id)
    checked = [(_described(item), context(item)) for item in inputs or []]
    for described, relation in checked:
        ds = record_dataset(store, described)
        with store.db.begin() as conn:
            add_links(conn, [(ds.id, "dataset", run_id, "run", relation)])


def _described(item: Mapping[str, Any]) -> Mapping[str, Any]:
    described = item.get("dataset") if isinstance(item, Mapping) else None
    if not isinstance(described, Mapping) or not isinstance(described.get("name"), str) or not described["name"]:
        raise InvalidInputError("A logged dataset needs a name.")
    return described


def context(item: Mapping[str, Any]) -> str:
    """The lineage relation of a DatasetInput: its `mlflow.data.context` tag, else "input"."""
    relation = DEFAULT_RELATION
    for tag in item.get("tags") or []:
        key = tag.get("key") if isinstance(tag, Mapping) else None
        if key != CONTEXT_TAG:
            raise UnsupportedError(f"mlkeep keeps a dataset input's {CONTEXT_TAG} tag only, not {key!r}.")
        relation = str(tag.get("value") or DEFAULT_RELATION)
    if len(relation) > MAX_RELATION or relation == "derived_from":
        raise InvalidInputError(f"A dataset context is at most {MAX_RELATION} characters and not 'derived_from', "
                                f"not {relation!r}.")
    return relation


def record_dataset(store: Store, described: Mapping[str, Any]) -> Dataset:
    """The mlkeep Dataset of an MLflow dataset description (metadata only: MLflow keeps no content)."""
    fields = {k: str(described.get(k) or "") for k in FIELDS}
    identity = "\0".join(fields[k] for k in ("name", "digest", "source_type", "source"))
    fingerprint = hashlib.sha256(f"mlflow-dataset\0{identity}".encode()).hexdigest()
    with store.db.begin() as conn:
        found = conn.execute(select(datasets.c.id).where(datasets.c.fingerprint == fingerprint)).scalar()
        if found is None:
            version = len(conn.execute(select(datasets.c.id).where(datasets.c.name == fields["name"])).all()) + 1
            ds = Dataset(id=new_id(), name=fields["name"], fingerprint=fingerprint, version=str(version),
                         location=fields["source"] or f"mlflow:{fields['digest']}", creation_time=now_ms())
            # "digest" is what `datasets.digest` searches (mlkeep.tracking.predicates.dataset_digest).
            insert_dataset(conn, ds, {"kind": "mlflow", "mlflow": fields, "digest": fields["digest"]})
            found = ds.id
    return get_dataset(store.db, found)


# Built once: an expanding IN keeps SQLAlchemy from coercing every id of a page into its own literal.
def _inputs(dialect: str) -> tuple[Executable, Sequence[str]]:
    """The input datasets of a page of runs (a statement builder for `id_lists.fetch`)."""
    return (select(links.c.dst_id, links.c.relation, datasets.c.name, datasets.c.fingerprint, datasets.c.location,
                   datasets.c.document)
            .join(datasets, datasets.c.id == links.c.src_id)
            .where(among(links.c.dst_id, dialect), links.c.src_kind == literal_column("'dataset'"),
                   links.c.dst_kind == literal_column("'run'"))
            .order_by(datasets.c.creation_time, datasets.c.id, links.c.relation)), ["ids"]


def inputs_of_runs(conn: Connection, ids: Any) -> dict[str, list[dict[str, Any]]]:
    """The DatasetInput messages of each of the runs `ids` (an `id_lists.ids_value`; runs without inputs are
    absent), in one query."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run_id, relation, name, fingerprint, location, document in fetch(conn, _inputs, ids):
        out.setdefault(run_id, []).append(_message(relation, name, fingerprint, location, document))
    return out


def _message(relation: str, name: str, fingerprint: str, location: str, document: str) -> dict[str, Any]:
    fields = json.loads(document).get("mlflow")
    if fields:
        described = {k: v for k, v in fields.items() if v}
    else:  # logged through mlkeep: described by what mlkeep knows
        described = {"name": name, "digest": fingerprint, "source_type": "mlkeep", "source": location}
    tags = [] if relation == DEFAULT_RELATION else [{"key": CONTEXT_TAG, "value": relation}]
    return {"dataset": described, "tags": tags}
