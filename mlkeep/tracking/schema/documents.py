"""What every document shares: the folders and their schema definitions, the schema checker, reading and writing.

A document is one entity as ml-experiments-schema JSON, named by its id under
the folder of its kind (see the package docstring for the mapping).
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkeep.errors import InvalidInputError, NotFoundError, SchemaValidationError

log = logging.getLogger(__name__)

SCHEMA_ENV = "MLKEEP_SCHEMA"
OBJECTS_PREFIX = "mlkeep://objects/"
MODELS_PREFIX = "mlkeep://models/"
EXTRA = "schema_extra"  # key, in a stored entity document, of schema fields mlkeep does not model
RUN_WITHOUT_MODEL = "mlkeep.TrainingRunWithoutModel"
MODEL_WITHOUT_DATASET = "mlkeep.ModelMetadataWithoutDataset"

# folder -> schema definition its documents must satisfy, in import order of kinds
FOLDERS: dict[str, str] = {
    "datasets": "DatasetMetadata",
    "training_runs": "TrainingRun",
    "mlkeep/training_runs": RUN_WITHOUT_MODEL,
    "models": "ModelMetadata",
    "mlkeep/models": MODEL_WITHOUT_DATASET,
    "predictions": "PredictionMetadata",
    "evaluations": "Evaluation",
}
COUNT_NAMES = {"mlkeep/training_runs": "runs_without_model", "mlkeep/models": "models_without_dataset"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Document:
    """One JSON document: its folder (which says its kind), its id and its body."""

    folder: str
    id: str
    body: dict[str, Any]

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.id}.json"

# == the schema ===============================================================================


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The schema at `path`, its leading `/* licence */` comment stripped (it is not JSON)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"Cannot read the ml-experiments-schema at {path}: {exc}.") from exc
    text = re.sub(r"^\s*/\*.*?\*/", "", text, count=1, flags=re.DOTALL)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not the ml-experiments-schema (not JSON: {exc}).") from exc
    if not isinstance(schema, dict) or "TrainingRun" not in schema:
        raise InvalidInputError(f"{path} is not the ml-experiments-schema (it has no TrainingRun).")
    return schema


class SchemaChecker:
    """Validates documents against their folder's definition of the ml-experiments-schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        from jsonschema import Draft7Validator
        from referencing import Registry
        from referencing.jsonschema import DRAFT7

        uri = "urn:ml-experiments-schema"
        contents = {
            **schema,
            RUN_WITHOUT_MODEL: _lifted(schema["TrainingRun"], "forModelId"),
            MODEL_WITHOUT_DATASET: _lifted(schema["ModelMetadata"], "trainedOnDatasetId"),
        }
        registry: Registry[Any] = Registry().with_resource(uri, DRAFT7.create_resource(contents))
        self._validators = {
            folder: Draft7Validator({"$ref": f"{uri}#/{name}"}, registry=registry) for folder, name in FOLDERS.items()
        }

    @classmethod
    def find(cls, schema: str | os.PathLike[str] | None) -> SchemaChecker | None:
        """A checker for `schema`, else for `$MLKEEP_SCHEMA`, else None (mlkeep ships no copy)."""
        path = schema if schema is not None else os.environ.get(SCHEMA_ENV)
        if not path:
            log.info("no ml-experiments-schema given (argument or %s): documents are not validated", SCHEMA_ENV)
            return None
        return cls(load_schema(path))

    def check(self, doc: Document) -> None:
        """Raise SchemaValidationError naming the document and the first failing path."""
        from jsonschema.exceptions import best_match

        error = best_match(self._validators[doc.folder].iter_errors(doc.body))
        if error is not None:
            where = "/" + "/".join(str(p) for p in error.absolute_path)
            raise SchemaValidationError(f"{doc.path}: {where}: {error.message}")


def _lifted(definition: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {**definition, "required": [r for r in definition.get("required", []) if r != name]}


# == reading and writing =====================================================================


def render(body: Mapping[str, Any]) -> bytes:
    """The bytes of a document: sorted keys, two-space indent, so equal documents are equal files."""
    return (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, then rename: a reader never sees half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # not mkstemp: its 0600 ignores the umask
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise



def read_documents(folder: str | os.PathLike[str]) -> list[Document]:
    """The documents under `folder`, by kind then file name; unreadable JSON raises SchemaValidationError."""
    root = Path(folder)
    if not root.is_dir():
        raise NotFoundError(f"{root} is not a folder of exported documents.")
    docs = []
    for sub in FOLDERS:
        for path in sorted((root / sub).glob("*.json")):
            rel = f"{sub}/{path.name}"
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SchemaValidationError(f"{rel}: not a JSON document ({exc}).") from exc
            if not isinstance(body, dict):
                raise SchemaValidationError(f"{rel}: /: a document must be a JSON object.")
            docs.append(Document(sub, _document_id(rel, body, path.stem), body))
    return docs


def _document_id(rel: str, body: Mapping[str, Any], stem: str) -> str:
    """The `id` field, else the file name (the schema makes ids optional); must be a safe file name."""
    doc_id = body.get("id", stem)
    if not isinstance(doc_id, str) or not _SAFE_ID.match(doc_id):
        raise SchemaValidationError(f"{rel}: /id: {doc_id!r} is not an id mlkeep can keep (1-64 of A-Z a-z 0-9 . _ -).")
    return doc_id
