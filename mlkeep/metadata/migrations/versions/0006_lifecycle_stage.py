"""lifecycle stage of experiments and runs (deleted ones are kept, hidden, and can be restored)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 18:35:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('experiments', 'runs'):
        op.add_column(table, sa.Column('lifecycle_stage', sa.String(length=16), nullable=False,
                                       server_default='active'))


def downgrade() -> None:
    for table in ('runs', 'experiments'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('lifecycle_stage')
