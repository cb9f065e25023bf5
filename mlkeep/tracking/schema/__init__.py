"""Export the store as ml-experiments-schema JSON documents, and import them back.

One document per entity, named by its id: `datasets/` (DatasetMetadata),
`models/` (ModelMetadata), `training_runs/` (TrainingRun), `predictions/`
(PredictionMetadata) and `evaluations/` (Evaluation). Documents are sorted,
indented JSON written atomically, so exporting the same store twice, or
exporting, importing into a fresh store and exporting again, gives the same
bytes.

What the schema cannot say goes into each document's `annotations` (a string
map the schema allows everywhere), under keys mlkeep reads back on import:
`mlkeep.*` for fields (a dataset's fingerprint, a run's experiment, status,
parent and traceback, the run that produced a model...), `tag.<key>` for a
run's tags, `param.<key>` for a param whose value is the empty string (a
Parameter's value must not be empty) and `input.<dataset id>` for the
datasets a run used.

Two kinds of entity have no valid schema document, because the schema
requires a link mlkeep does not: a run that produced no model (TrainingRun
requires `forModelId`) and a model logged without `trained_on`
(ModelMetadata requires `trainedOnDatasetId`). Skipping them would lose runs
(a search's parent run, an evaluation-only run) and everything that points
at them, so they are written with the same mapping into
`mlkeep/training_runs/` and `mlkeep/models/`, outside the five schema
folders, and validated against the schema's definition with that one
requirement lifted. A reader of the schema sees only valid documents.

Content (dataset bytes, pickled models, prediction values, run artifacts) is
not exported: an imported entity is metadata whose object ids point at
content the importing store may not have, so loading it raises NotFoundError
until the objects are copied over.

Documents are checked against the schema itself when one is available (the
`schema` argument, else the `MLKEEP_SCHEMA` environment variable); mlkeep
does not ship a copy. Import always checks every field it reads, validates
every document before writing any, and writes all of them in one
transaction; entities whose id is already in the store are left alone, so
importing twice changes nothing.

The code is split by job: `documents` (the folders, the Document, the
schema and its checker, rendering, atomic writing, reading a folder back),
`export` (entity -> document, `export_documents`) and `import_` (document
-> plan -> one transaction, `import_documents`). The row inserts that import
shares with logging live beside the logging code (`insert_dataset`,
`insert_model`, `insert_prediction`, `insert_evaluation`) and take the
caller's connection, so one import stays one transaction.
"""

from __future__ import annotations

from mlkeep.tracking.schema.documents import (
    FOLDERS,
    SCHEMA_ENV,
    Document,
    SchemaChecker,
    load_schema,
    read_documents,
    render,
)
from mlkeep.tracking.schema.export import collect_documents, export_documents
from mlkeep.tracking.schema.import_ import import_documents

__all__ = [
    "FOLDERS",
    "SCHEMA_ENV",
    "Document",
    "SchemaChecker",
    "collect_documents",
    "export_documents",
    "import_documents",
    "load_schema",
    "read_documents",
    "render",
]
