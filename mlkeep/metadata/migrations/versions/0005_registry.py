"""registry

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 17:18:07.292658
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registered_models',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('owner', sa.String(length=250), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_updated_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('registry_tags',
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('entity_id', 'key')
    )
    with op.batch_alter_table('registry_tags', schema=None) as batch_op:
        batch_op.create_index('ix_registry_tags_key_value', ['key', 'value'], unique=False)

    op.create_table('alias_transitions',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('registered_model_id', sa.String(length=64), nullable=False),
    sa.Column('alias', sa.String(length=250), nullable=False),
    sa.Column('from_version', sa.Integer(), nullable=True),
    sa.Column('to_version', sa.Integer(), nullable=True),
    sa.Column('user_name', sa.String(length=250), nullable=True),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('alias_transitions', schema=None) as batch_op:
        batch_op.create_index('ix_alias_transitions_model_time', ['registered_model_id', 'time'], unique=False)

    op.create_table('model_aliases',
    sa.Column('registered_model_id', sa.String(length=64), nullable=False),
    sa.Column('alias', sa.String(length=250), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('update_time', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ),
    sa.PrimaryKeyConstraint('registered_model_id', 'alias')
    )
    op.create_table('model_versions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('registered_model_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('source_kind', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=250), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('dataset_id', sa.String(length=64), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('owner', sa.String(length=250), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['registered_model_id'], ['registered_models.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index('ix_model_versions_model_version', ['registered_model_id', 'version'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_model_versions_model_version')

    op.drop_table('model_versions')
    op.drop_table('model_aliases')
    with op.batch_alter_table('alias_transitions', schema=None) as batch_op:
        batch_op.drop_index('ix_alias_transitions_model_time')

    op.drop_table('alias_transitions')
    with op.batch_alter_table('registry_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_registry_tags_key_value')

    op.drop_table('registry_tags')
    op.drop_table('registered_models')
