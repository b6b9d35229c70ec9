"""materials.byte_size as BIGINT; index on jobs (kind, status)

An INTEGER byte_size holds at most 2 GiB on PostgreSQL: a larger upload would fail to
insert. /metrics counts jobs by kind and status on every scrape; the index lets the
database answer from the index alone instead of scanning and sorting the table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 04:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('materials', schema=None) as batch_op:
        batch_op.alter_column(
            'byte_size', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True
        )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_kind_status', ['kind', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_kind_status')
    with op.batch_alter_table('materials', schema=None) as batch_op:
        batch_op.alter_column(
            'byte_size', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True
        )
