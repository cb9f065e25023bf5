"""metric_buckets: per-bucket summaries of long metric series, so charts never read a whole series

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 22:00:00

Series already longer than the threshold get their summaries here, from
their points, in the migration's transaction: afterwards every series the
read path treats as summarized has complete summaries.
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'metric_buckets',
        sa.Column('run_id', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=250), nullable=False),
        sa.Column('level', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('bucket', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('first_step', sa.BigInteger(), nullable=False),
        sa.Column('first_timestamp', sa.BigInteger(), nullable=False),
        sa.Column('first_value', sa.Float(), nullable=True),
        sa.Column('last_step', sa.BigInteger(), nullable=False),
        sa.Column('last_timestamp', sa.BigInteger(), nullable=False),
        sa.Column('last_value', sa.Float(), nullable=True),
        sa.Column('min_step', sa.BigInteger(), nullable=True),
        sa.Column('min_timestamp', sa.BigInteger(), nullable=True),
        sa.Column('min_value', sa.Float(), nullable=True),
        sa.Column('max_step', sa.BigInteger(), nullable=True),
        sa.Column('max_timestamp', sa.BigInteger(), nullable=True),
        sa.Column('max_value', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id']),
        sa.PrimaryKeyConstraint('run_id', 'key', 'level', 'bucket'),
    )
    from mlkeep.tracking.metric_buckets import summarize_long_series

    summarize_long_series(op.get_bind())


def downgrade() -> None:
    op.drop_table('metric_buckets')
