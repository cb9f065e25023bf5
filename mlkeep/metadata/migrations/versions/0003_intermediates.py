"""intermediates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 16:20:12.995326
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('intermediates',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('capture_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('layer', sa.String(length=250), nullable=False),
    sa.Column('repository', sa.String(length=250), nullable=False),
    sa.Column('commit_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('codec', sa.String(length=250), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('n_rows', sa.BigInteger(), nullable=False),
    sa.Column('n_cols', sa.BigInteger(), nullable=False),
    sa.Column('raw_bytes', sa.BigInteger(), nullable=False),
    sa.Column('stored_bytes', sa.BigInteger(), nullable=False),
    sa.Column('new_bytes', sa.BigInteger(), nullable=False),
    sa.Column('manifest', sa.String(length=64), nullable=True),
    sa.Column('n_queries', sa.BigInteger(), nullable=False),
    sa.Column('t_rerun', sa.Float(), nullable=False),
    sa.Column('t_read', sa.Float(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('intermediates', schema=None) as batch_op:
        batch_op.create_index('ix_intermediates_capture', ['capture_id'], unique=False)
        batch_op.create_index('ix_intermediates_commit_layer', ['commit_id', 'layer'], unique=False)
        batch_op.create_index('ix_intermediates_dataset', ['dataset_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('intermediates', schema=None) as batch_op:
        batch_op.drop_index('ix_intermediates_dataset')
        batch_op.drop_index('ix_intermediates_commit_layer')
        batch_op.drop_index('ix_intermediates_capture')

    op.drop_table('intermediates')
