"""experiment_tags: key/value tags on experiments, as MLflow's `set_experiment_tag` writes them

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 00:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'experiment_tags',
        sa.Column('experiment_id', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=250), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id']),
        sa.PrimaryKeyConstraint('experiment_id', 'key'),
    )


def downgrade() -> None:
    op.drop_table('experiment_tags')
