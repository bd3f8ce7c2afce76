"""Top-ups: top-ups and their history, Stripe customers, bonus rules, webhook events, refunds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "topups",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("checkout_kind", sa.Text, nullable=False),
        sa.Column("save_payment_method", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("provider_checkout_id", sa.Text),
        sa.Column("provider_payment_id", sa.Text),
        sa.Column("credited_amount", sa.BigInteger),
        sa.Column("bonus_amount", sa.BigInteger),
        sa.Column("bonus_rule_id", sa.Text),
        sa.Column("refunded_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status_reason", sa.Text),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("succeeded_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.CheckConstraint("amount > 0", name="topups_amount_positive"),
        sa.CheckConstraint("provider IN ('stripe', 'razorpay')", name="topups_provider_known"),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'flagged')", name="topups_status_known"
        ),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= COALESCE(credited_amount, 0)",
            name="topups_refunds_within_credit",
        ),
    )
    op.create_index("topups_id", "topups", ["id"], unique=True)
    op.create_index("topups_checkout", "topups", ["provider", "provider_checkout_id"])
    op.create_index("topups_payment", "topups", ["provider", "provider_payment_id"])
    op.create_index("topups_tenant_created", "topups", ["tenant_id", "created_at"])
    op.create_index(
        "topups_pending", "topups", ["created_at"], postgresql_where=sa.text("status = 'pending'")
    )

    op.create_table(
        "topup_events",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("topup_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("topup_events_topup", "topup_events", ["tenant_id", "topup_id", "id"])

    op.create_table(
        "stripe_customers",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("default_payment_method", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    )

    op.create_table(
        "bonus_rules",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("min_amount", sa.BigInteger, nullable=False),
        sa.Column("percent", sa.Numeric(7, 4)),
        sa.Column("fixed_amount", sa.BigInteger),
        sa.Column("starts_at", sa.DateTime(timezone=True)),
        sa.Column("ends_at", sa.DateTime(timezone=True)),
        sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.CheckConstraint("(percent IS NULL) <> (fixed_amount IS NULL)", name="bonus_rules_one_kind"),
    )

    op.create_table(
        "webhook_events",
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False, server_default=""),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("provider", "event_id"),
    )

    op.create_table(
        "topup_refunds",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("topup_id", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("provider_refund_id", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("debited", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("failure_reason", sa.Text),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.CheckConstraint("amount > 0", name="topup_refunds_amount_positive"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="topup_refunds_status_known"),
    )
    op.create_index("topup_refunds_topup", "topup_refunds", ["tenant_id", "topup_id"])
    op.create_index("topup_refunds_provider_id", "topup_refunds", ["provider_refund_id"])

    # Exactly once, enforced by the database: one credit, one bonus per top-up, one debit per refund.
    op.create_index(
        "ledger_entries_once_per_reference",
        "ledger_entries",
        ["tenant_id", "type", "reference_type", "reference_id"],
        unique=True,
        postgresql_where=sa.text("type IN ('topup', 'bonus', 'topup_refund')"),
    )


def downgrade() -> None:
    op.drop_index("ledger_entries_once_per_reference", table_name="ledger_entries")
    op.drop_table("topup_refunds")
    op.drop_table("webhook_events")
    op.drop_table("bonus_rules")
    op.drop_table("stripe_customers")
    op.drop_table("topup_events")
    op.drop_table("topups")
