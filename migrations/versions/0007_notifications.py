"""Billing contacts and the e-mails sent to them.

`billing_contacts`: one row per tenant, its addresses in order (normalised, at most 10).
`email_notifications`: one row per (event, recipient), unique, so a dispatch run twice adds nothing; the
`send_email` job sends it and records the outcome (sent with its time, retrying, refused, failed, skipped).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("queued", "retrying", "sent", "refused", "failed", "skipped")


def upgrade() -> None:
    op.create_table(
        "billing_contacts",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("emails", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("cardinality(emails) <= 10", name="billing_contacts_at_most_10"),
    )
    op.create_table(
        "email_notifications",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text),  # set at the first attempt, then kept
        sa.Column("status", sa.Text, nullable=False, server_default="queued"),
        sa.Column("subject", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("event_id", "recipient", name="email_notifications_once_per_recipient"),
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="email_notifications_status"
        ),
        sa.CheckConstraint("(status = 'sent') = (sent_at IS NOT NULL)", name="email_notifications_sent_at"),
    )
    op.create_index("email_notifications_tenant_id", "email_notifications", ["tenant_id", sa.text("id DESC")])


def downgrade() -> None:
    op.drop_table("email_notifications")
    op.drop_table("billing_contacts")
