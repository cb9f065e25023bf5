"""Models: describe a fitted model in the schema's terms, store it, load it back.

The description (learning algorithm, framework, hyperparameters with the
schema's `nonDefault` flag, the transforms graph of a pipeline) comes from the
object itself, so nothing has to be typed by hand. The model is serialized
with the framework's own format (pickle for scikit-learn, `torch.save` for
PyTorch) into the object store. Autologging stores pickle protocol 5 with the
numpy arrays out of band (`pack_pickle5`): the pickle stream, then each array's
bytes, behind a short header; it is what the fit's snapshot already holds, so
the model is never pickled twice. `deserialize` reads both. Loading unpickles:
only load models from a store you trust, as with any pickle.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from mlkeep.errors import InvalidInputError, MissingDependencyError, NotFoundError
from mlkeep.ids import new_id
from mlkeep.metadata import Database
from mlkeep.metadata.tables import models
from mlkeep.objects import ObjectStore
from mlkeep.tracking import describe_model
from mlkeep.tracking.entities import Dataset, Model
from mlkeep.tracking.lineage import add_links


def log_model(
    db: Database,
    objects: ObjectStore,
    model: Any,
    *,
    name: str | None = None,
    trained_on: Dataset | str | None = None,
    run_id: str | None = None,
) -> Model:
    """Describe and store `model`; link it to the run that made it and the dataset it was trained on."""
    if model is None or isinstance(model, (str, bytes, int, float)):
        raise InvalidInputError(f"log_model needs a fitted model object, not {model!r}.")
    from mlkeep.tracking.datasets import get_dataset

    dataset = get_dataset(db, trained_on) if isinstance(trained_on, str) else trained_on
    model_id = new_id()
    flavor, payload = serialize(model)
    oid = objects.put_bytes(payload)
    entity = describe_model.describe(model, model_id=model_id, name=name, flavor=flavor, object_id=oid,
                                     run_id=run_id, dataset=dataset)
    with db.begin() as conn:
        insert_model(conn, entity)
        # the run that trained on a dataset used it, even if it never logged it itself
        add_links(conn, [(entity.trained_on_dataset_id, "dataset", entity.run_id, "run", "input")])
    return entity


def insert_model(conn: Connection, model: Model, extra: Mapping[str, Any] | None = None) -> None:
    """Insert a Model row and its produced / trained_on links in the caller's transaction, keeping its id.

    `extra` adds keys to the stored document (import keeps there the schema
    fields mlkeep does not model, so they are exported again).
    """
    document = {k: v for k, v in model.to_dict().items() if k not in _COLUMNS}
    conn.execute(
        models.insert(),
        [
            {
                "id": model.id, "name": model.name, "run_id": model.run_id,
                "trained_on_dataset_id": model.trained_on_dataset_id,
                "learning_algorithm": model.learning_algorithm, "creation_time": model.creation_time,
                "object": model.object,
                "document": json.dumps({**document, **(extra or {})}, sort_keys=True, default=str),
            }
        ],
    )
    add_links(
        conn,
        [
            (model.run_id, "run", model.id, "model", "produced"),
            (model.trained_on_dataset_id, "dataset", model.id, "model", "trained_on"),
        ],
    )


def get_model(db: Database, model_id: str) -> Model:
    with db.connect() as conn:
        row = conn.execute(select(models).where(models.c.id == model_id)).first()
    if row is None:
        raise NotFoundError(f"No model with id {model_id!r}. List them with `mlkeep models`.")
    return _entity(row)


def list_models(db: Database, run_id: str | None = None) -> list[Model]:
    query = select(models).order_by(models.c.creation_time)
    if run_id is not None:
        query = query.where(models.c.run_id == run_id)
    with db.connect() as conn:
        return [_entity(r) for r in conn.execute(query).all()]


def load_model(db: Database, objects: ObjectStore, model_id: str) -> Any:
    """The model object, deserialized from its verified blob."""
    model = get_model(db, model_id)
    if model.object is None:
        raise NotFoundError(f"Model {model_id} was recorded without its serialized form (e.g. imported metadata).")
    return deserialize(model.flavor or "pickle", objects.get_bytes(model.object))


def serialize(model: Any) -> tuple[str, bytes]:
    """(flavor, bytes): `torch.save` for torch modules, pickle for everything else."""
    if describe_model.is_torch_module(model):
        import torch

        buf = io.BytesIO()
        torch.save(model, buf)
        return "torch", buf.getvalue()
    try:
        return ("sklearn" if describe_model.framework_of(model) == "sklearn" else "pickle"), pickle.dumps(
            model, protocol=pickle.HIGHEST_PROTOCOL
        )
    except Exception as exc:
        raise InvalidInputError(f"Cannot serialize {type(model).__name__} with pickle: {exc}") from exc


def deserialize(flavor: str, payload: bytes) -> Any:
    """The model in `payload`; `MissingDependencyError` naming the package when its framework is not installed."""
    try:
        if flavor == "torch":
            import torch

            return torch.load(io.BytesIO(payload), weights_only=False)
        if payload.startswith(PICKLE5_MAGIC):
            return _unpack_pickle5(payload)
        return pickle.loads(payload)  # noqa: S301 - the store's own, hash-verified blob
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0] or None
        raise MissingDependencyError(
            f"This {flavor} model needs the Python module {package!r}, which is not installed in this"
            " environment: install the package that provides it, then load the model again.", package=package) from exc


PICKLE5_MAGIC = b"mlkeep-pickle5\n"


def pack_pickle5(stream: bytes, buffers: Sequence[memoryview]) -> bytes:
    """One blob from a protocol-5 pickle stream and its out-of-band buffers, in order.

    Layout: `PICKLE5_MAGIC`, an 8-byte little-endian header length, a JSON list of
    byte lengths (the stream's, then each buffer's), the stream, the buffers.
    """
    header = json.dumps([len(stream), *(b.nbytes for b in buffers)]).encode()
    return b"".join([PICKLE5_MAGIC, len(header).to_bytes(8, "little"), header, stream, *buffers])


def _unpack_pickle5(payload: bytes) -> Any:
    start = len(PICKLE5_MAGIC) + 8
    end = start + int.from_bytes(payload[len(PICKLE5_MAGIC):start], "little")
    try:
        sizes = [int(n) for n in json.loads(payload[start:end])]
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"A pickle5 model blob has a damaged header: {exc}") from exc
    # one writable copy: the arrays of the model are backed by it and must be writable, as they were
    body = memoryview(bytearray(payload[end:]))
    if sum(sizes) != len(body):
        raise InvalidInputError(f"A pickle5 model blob holds {len(body)} bytes, its header says {sum(sizes)}.")
    views, offset = [], 0
    for size in sizes:
        views.append(body[offset:offset + size])
        offset += size
    return pickle.loads(views[0], buffers=views[1:])  # noqa: S301 - the store's own, hash-verified blob


_COLUMNS = {"id", "name", "run_id", "trained_on_dataset_id", "learning_algorithm", "creation_time", "object"}


def _entity(row: Any) -> Model:
    data = json.loads(row.document)
    data.update({c: getattr(row, c) for c in _COLUMNS})
    return Model.from_dict(data)

