"""Webhook endpoints and their delivery attempts (outbound Standard Webhooks callbacks).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE events DROP CONSTRAINT events_delivery_known")
    op.execute(
        "ALTER TABLE events ADD CONSTRAINT events_delivery_known"
        " CHECK (delivery IN ('pending', 'dispatched', 'no_endpoints'))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP CONSTRAINT events_delivery_known")
    op.execute(
        "ALTER TABLE events ADD CONSTRAINT events_delivery_known CHECK (delivery IN ('pending', 'no_endpoints'))"
    )
