"""The metadata database's tables (SQLAlchemy Core).

Portable on purpose: only types and constructs SQLite and PostgreSQL share.
Times are integer milliseconds since the epoch, as the ml-experiments-schema
counts them. Structured parts of an entity (a dataset's statistics, a model's
hyperparameters) live in a JSON text column: they are read whole, never
searched by SQL. What *is* searched (params, tags, latest metrics) has its own
narrow table with an index.

Changing a table means adding an Alembic revision under `migrations/versions`;
`tests/metadata/test_migrations.py` fails while the two disagree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = String(64)
KEY = String(250)
# SQLite only aliases rowid for INTEGER PRIMARY KEY, which makes appends fast.
SERIAL = BigInteger().with_variant(Integer(), "sqlite")

experiments = Table(
    "experiments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("description", Text),
    # "active" or "deleted": a deleted experiment is hidden from listings and can be restored.
    Column("lifecycle_stage", String(16), nullable=False, server_default="active"),
)

# Experiment tags (MLflow's `set_experiment_tag`): few per experiment, read with it, never searched by SQL.
experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", ID, ForeignKey("experiments.id"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("experiment_id", ID, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("parent_run_id", ID, ForeignKey("runs.id")),
    Column("creator", String(250)),
    Column("failure", Text),
    Column("environment", Text),
    # "active" or "deleted": a deleted run is hidden from search and can be restored.
    Column("lifecycle_stage", String(16), nullable=False, server_default="active"),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    Index("ix_runs_start_time", "start_time"),
    # A search's runs: one experiment's live ones, newest first, without reading the runs themselves.
    Index("ix_runs_experiment_stage_start", "experiment_id", "lifecycle_stage", "start_time"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
    # Covering: a filter on a param reads the ids of the runs passing it from the index alone.
    Index("ix_params_key_value_run", "key", "value", "run_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_key_value_run", "key", "value", "run_id"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("seq", SERIAL, primary_key=True, autoincrement=True),
    Column("run_id", ID, nullable=False),
    Column("key", KEY, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float),  # NULL is NaN
    # Covering: a metric's history is read from the index alone, in step order.
    Index("ix_metrics_run_key_step_covering", "run_id", "key", "step", "timestamp", "seq", "value"),
)

# One row per (run, metric): what search, sort and compare read, kept current
# by every flush so no query ever scans the full history.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Float),  # NULL is NaN
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("min_value", Float),
    Column("max_value", Float),
    Column("count", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value_run", "key", "value", "run_id"),
)

# Per (run, metric, level, bucket): the count and the first, last, lowest and
# highest point of the steps [bucket * width, (bucket + 1) * width) at each
# width of `mlkeep.tracking.metric_buckets.LEVELS`. Kept for series longer than
# its threshold by the flush that writes their points, so a chart of a long
# series reads a few hundred of these rows, not the series.
metric_buckets = Table(
    "metric_buckets",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("count", BigInteger, nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("first_timestamp", BigInteger, nullable=False),
    Column("first_value", Float),  # NULL is NaN
    Column("last_step", BigInteger, nullable=False),
    Column("last_timestamp", BigInteger, nullable=False),
    Column("last_value", Float),
    Column("min_step", BigInteger),  # the min_ and max_ columns are NULL when every value is NaN
    Column("min_timestamp", BigInteger),
    Column("min_value", Float),
    Column("max_step", BigInteger),
    Column("max_timestamp", BigInteger),
    Column("max_value", Float),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("object", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(250), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("location", Text, nullable=False),
    Column("derived_from_id", ID, ForeignKey("datasets.id")),
    Column("creation_time", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_datasets_fingerprint", "fingerprint", unique=True),
    Index("ix_datasets_name", "name"),
)

models = Table(
    "models",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(250), nullable=False),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("trained_on_dataset_id", ID, ForeignKey("datasets.id")),
    Column("learning_algorithm", String(250), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("object", String(64)),
    Column("document", Text, nullable=False),
    Index("ix_models_run", "run_id"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(250)),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("model_id", ID, ForeignKey("models.id"), nullable=False),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("object", String(64)),
    Column("document", Text, nullable=False),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(250)),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("model_id", ID, ForeignKey("models.id"), nullable=False),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("prediction_id", ID, ForeignKey("predictions.id")),
    Column("creation_time", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
)

# The lineage graph as edges (src came before dst), written alongside the
# entity that creates them so `lineage` walks one indexed table.
links = Table(
    "links",
    metadata,
    Column("src_id", ID, primary_key=True),
    Column("dst_id", ID, primary_key=True),
    Column("relation", String(32), primary_key=True),
    Column("src_kind", String(16), nullable=False),
    Column("dst_kind", String(16), nullable=False),
    Index("ix_links_dst", "dst_id"),
)

# -- versioning: git's model for model versions --------------------------------
# Commits themselves are immutable objects in the object store (like git's);
# this index makes log, prefix lookup and lineage queries cheap. Refs are the
# only mutable state and move by compare-and-swap.
repositories = Table(
    "repositories",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("creation_time", BigInteger, nullable=False),
)

commits = Table(
    "commits",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repo_id", ID, ForeignKey("repositories.id"), nullable=False),
    Column("tree", String(64), nullable=False),
    Column("parents", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("author", String(250)),
    Column("time", BigInteger, nullable=False),
    Column("run_id", ID),
    # Set when gc dropped the commit's weights under the retention policy; the commit stays in history.
    Column("pruned_time", BigInteger),
    Index("ix_commits_repo_time", "repo_id", "time"),
)

refs = Table(
    "refs",
    metadata,
    Column("repo_id", ID, ForeignKey("repositories.id"), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("name", String(250), primary_key=True),
    Column("commit_id", String(64), nullable=False),
)

# -- intermediates: outputs of model layers / pipeline stages over a dataset ----
# One row per (capture, layer). The chunk grid of a stored intermediate is an
# immutable manifest object (`manifest`); what changes is only its status
# (stored or recomputed on demand), its query count and its measured times,
# which the cost model reads.
intermediates = Table(
    "intermediates",
    metadata,
    Column("id", ID, primary_key=True),
    Column("capture_id", ID, nullable=False),
    Column("name", String(250), nullable=False),
    Column("layer", String(250), nullable=False),
    Column("repository", String(250), nullable=False),
    Column("commit_id", String(64), nullable=False),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    Column("codec", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("n_rows", BigInteger, nullable=False),
    Column("n_cols", BigInteger, nullable=False),
    Column("raw_bytes", BigInteger, nullable=False),
    Column("stored_bytes", BigInteger, nullable=False),
    Column("new_bytes", BigInteger, nullable=False),
    Column("manifest", String(64)),
    Column("n_queries", BigInteger, nullable=False),
    Column("t_rerun", Float, nullable=False),
    Column("t_read", Float, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_intermediates_commit_layer", "commit_id", "layer"),
    Index("ix_intermediates_dataset", "dataset_id"),
    Index("ix_intermediates_capture", "capture_id"),
)

# -- access control: server tokens (mlkeep.access) -------------------------------
# Only the SHA-256 of a token is stored; the secret is shown once, at creation.
tokens = Table(
    "tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("role", String(8), nullable=False),
    Column("experiment_id", ID, ForeignKey("experiments.id")),
    Column("description", Text),
    Column("creation_time", BigInteger, nullable=False),
    Column("revoked_time", BigInteger),
)

# -- lifecycle: registered models, versions, aliases (mlkeep.lifecycle.registry) --
# Versions are numbered 1, 2, ... per registered model; an alias is the only
# mutable pointer and moves by compare-and-swap, each move recorded as a
# transition (who, when, from, to, why). Tags of models and versions share one
# narrow table keyed by the entity's id, so search filters them by index.
registered_models = Table(
    "registered_models",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("description", Text),
    Column("owner", String(250)),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("registered_model_id", ID, ForeignKey("registered_models.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source_kind", String(16), nullable=False),
    Column("source", String(250), nullable=False),
    Column("model_id", ID, ForeignKey("models.id"), nullable=False),
    Column("run_id", ID),
    Column("dataset_id", ID),
    Column("description", Text),
    Column("owner", String(250)),
    Column("creation_time", BigInteger, nullable=False),
    Index("ix_model_versions_model_version", "registered_model_id", "version", unique=True),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("registered_model_id", ID, ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(250), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("update_time", BigInteger, nullable=False),
)

alias_transitions = Table(
    "alias_transitions",
    metadata,
    Column("seq", SERIAL, primary_key=True, autoincrement=True),
    Column("registered_model_id", ID, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(250), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("user_name", String(250)),
    Column("time", BigInteger, nullable=False),
    Column("reason", Text),
    Index("ix_alias_transitions_model_time", "registered_model_id", "time"),
)

registry_tags = Table(
    "registry_tags",
    metadata,
    Column("entity_id", ID, primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_registry_tags_key_value", "key", "value"),
)

# -- store-wide settings (e.g. the retention policy), one JSON document per key --
settings = Table(
    "settings",
    metadata,
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Column("update_time", BigInteger, nullable=False),
)
