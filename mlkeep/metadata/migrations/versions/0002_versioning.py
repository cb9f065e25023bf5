"""versioning

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:54:43.987402
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('repositories',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('commits',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('repo_id', sa.String(length=64), nullable=False),
    sa.Column('tree', sa.String(length=64), nullable=False),
    sa.Column('parents', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=250), nullable=True),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('commits', schema=None) as batch_op:
        batch_op.create_index('ix_commits_repo_time', ['repo_id', 'time'], unique=False)

    op.create_table('refs',
    sa.Column('repo_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('commit_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repositories.id'], ),
    sa.PrimaryKeyConstraint('repo_id', 'kind', 'name')
    )


def downgrade() -> None:
    op.drop_table('refs')
    with op.batch_alter_table('commits', schema=None) as batch_op:
        batch_op.drop_index('ix_commits_repo_time')

    op.drop_table('commits')
    op.drop_table('repositories')
