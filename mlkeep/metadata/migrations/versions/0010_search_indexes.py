"""search indexes: covering indexes for run search filters and metric histories

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 06:00:00

A filter on a param, tag or metric reads the ids of the runs passing it from
a (key, value, run_id) index alone; a metric history from a covering
(run_id, key, step, timestamp, seq, value) index; one experiment's live runs,
newest first, from (experiment_id, lifecycle_stage, start_time). Each new
index replaces the one it extends, so writes keep the same number of indexes.
"""

from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# (table, old index, its columns, new index, its columns); old None: the new index is an addition.
CHANGES: list[tuple[str, str | None, list[str] | None, str, list[str]]] = [
    ('params', 'ix_params_key_value', ['key', 'value'], 'ix_params_key_value_run', ['key', 'value', 'run_id']),
    ('tags', 'ix_tags_key_value', ['key', 'value'], 'ix_tags_key_value_run', ['key', 'value', 'run_id']),
    ('latest_metrics', 'ix_latest_metrics_key_value', ['key', 'value'], 'ix_latest_metrics_key_value_run',
     ['key', 'value', 'run_id']),
    ('metrics', 'ix_metrics_run_key_step', ['run_id', 'key', 'step'], 'ix_metrics_run_key_step_covering',
     ['run_id', 'key', 'step', 'timestamp', 'seq', 'value']),
    ('runs', None, None, 'ix_runs_experiment_stage_start', ['experiment_id', 'lifecycle_stage', 'start_time']),
]


def upgrade() -> None:
    for table, old, _, new, columns in CHANGES:
        op.create_index(new, table, columns, unique=False)
        if old is not None:
            op.drop_index(old, table_name=table)


def downgrade() -> None:
    for table, old, old_columns, new, _ in reversed(CHANGES):
        if old is not None:
            op.create_index(old, table, old_columns or [], unique=False)
        op.drop_index(new, table_name=table)
