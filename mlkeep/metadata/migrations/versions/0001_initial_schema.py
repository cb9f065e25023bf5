"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 15:46:58.458314
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('derived_from_id', sa.String(length=64), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['derived_from_id'], ['datasets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index('ix_datasets_fingerprint', ['fingerprint'], unique=True)
        batch_op.create_index('ix_datasets_name', ['name'], unique=False)

    op.create_table('experiments',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('links',
    sa.Column('src_id', sa.String(length=64), nullable=False),
    sa.Column('dst_id', sa.String(length=64), nullable=False),
    sa.Column('relation', sa.String(length=32), nullable=False),
    sa.Column('src_kind', sa.String(length=16), nullable=False),
    sa.Column('dst_kind', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('src_id', 'dst_id', 'relation')
    )
    with op.batch_alter_table('links', schema=None) as batch_op:
        batch_op.create_index('ix_links_dst', ['dst_id'], unique=False)

    op.create_table('metrics',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_run_key_step', ['run_id', 'key', 'step'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('experiment_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.Column('parent_run_id', sa.String(length=64), nullable=True),
    sa.Column('creator', sa.String(length=250), nullable=True),
    sa.Column('failure', sa.Text(), nullable=True),
    sa.Column('environment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ),
    sa.ForeignKeyConstraint(['parent_run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_experiment_start', ['experiment_id', 'start_time'], unique=False)
        batch_op.create_index('ix_runs_start_time', ['start_time'], unique=False)

    op.create_table('artifacts',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=False),
    sa.Column('object', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'path')
    )
    op.create_table('latest_metrics',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('min_value', sa.Float(), nullable=True),
    sa.Column('max_value', sa.Float(), nullable=True),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_latest_metrics_key_value', ['key', 'value'], unique=False)

    op.create_table('models',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('trained_on_dataset_id', sa.String(length=64), nullable=True),
    sa.Column('learning_algorithm', sa.String(length=250), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('object', sa.String(length=64), nullable=True),
    sa.Column('document', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.ForeignKeyConstraint(['trained_on_dataset_id'], ['datasets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index('ix_models_run', ['run_id'], unique=False)

    op.create_table('params',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    with op.batch_alter_table('params', schema=None) as batch_op:
        batch_op.create_index('ix_params_key_value', ['key', 'value'], unique=False)

    op.create_table('tags',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_key_value', ['key', 'value'], unique=False)

    op.create_table('predictions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('object', sa.String(length=64), nullable=True),
    sa.Column('document', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('evaluations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('prediction_id', sa.String(length=64), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('evaluations')
    op.drop_table('predictions')
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.drop_index('ix_tags_key_value')

    op.drop_table('tags')
    with op.batch_alter_table('params', schema=None) as batch_op:
        batch_op.drop_index('ix_params_key_value')

    op.drop_table('params')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index('ix_models_run')

    op.drop_table('models')
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_latest_metrics_key_value')

    op.drop_table('latest_metrics')
    op.drop_table('artifacts')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_start_time')
        batch_op.drop_index('ix_runs_experiment_start')

    op.drop_table('runs')
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_metrics_run_key_step')

    op.drop_table('metrics')
    with op.batch_alter_table('links', schema=None) as batch_op:
        batch_op.drop_index('ix_links_dst')

    op.drop_table('links')
    op.drop_table('experiments')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index('ix_datasets_name')
        batch_op.drop_index('ix_datasets_fingerprint')

    op.drop_table('datasets')
