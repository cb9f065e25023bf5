"""retention: store-wide settings (the retention policy) and the time gc dropped a commit's weights

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 19:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'settings',
        sa.Column('key', sa.String(length=250), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('update_time', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.add_column('commits', sa.Column('pruned_time', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('commits') as batch:
        batch.drop_column('pruned_time')
    op.drop_table('settings')
