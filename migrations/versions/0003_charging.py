"""Charging: plans, subscriptions, default rates, call holds, usage charges and their refunds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def _rate_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("per_minute_rate", sa.Numeric(18, 6), nullable=False),
        sa.Column("billing_increment_seconds", sa.Integer, nullable=False, server_default="60"),
        sa.Column("minimum_billable_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("connection_fee", sa.Numeric(18, 6), nullable=False, server_default="0"),
        sa.Column("sms_price", sa.Numeric(18, 6), nullable=False, server_default="0"),
        sa.Column("email_price", sa.Numeric(18, 6), nullable=False, server_default="0"),
        sa.Column("fax_page_price", sa.Numeric(18, 6), nullable=False, server_default="0"),
        sa.Column("file_transfer_price", sa.Numeric(18, 6), nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("monthly_price", sa.BigInteger, nullable=False),
        sa.Column("included_minutes", sa.Integer, nullable=False, server_default="0"),
        *_rate_columns(),
        sa.Column("features", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.CheckConstraint("monthly_price >= 0 AND included_minutes >= 0", name="plans_amounts"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quota_used_seconds", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("changed_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.CheckConstraint("quota_used_seconds >= 0", name="subscriptions_quota_nonnegative"),
    )
    op.create_table(
        "billing_defaults",
        sa.Column("currency", sa.String(3), primary_key=True),
        *_rate_columns(),
        sa.Column("minimum_balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    )

    op.add_column("wallets", sa.Column("max_concurrent_calls", sa.Integer))
    op.add_column("wallets", sa.Column("daily_spend_cap", sa.BigInteger))
    op.add_column("wallets", sa.Column("spent_day", sa.Date))
    op.add_column("wallets", sa.Column("spent_today", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("wallets", sa.Column("owed", sa.BigInteger, nullable=False, server_default="0"))
    op.create_check_constraint("wallets_owed_nonnegative", "wallets", "owed >= 0")

    op.create_table(
        "holds",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("max_seconds", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("tenant_id", "call_id"),
        sa.CheckConstraint("amount >= 0", name="holds_amount_nonnegative"),
        sa.CheckConstraint(
            "status IN ('active', 'settled', 'released', 'expired')", name="holds_status_known"
        ),
    )
    op.create_index(
        "holds_active_expiry", "holds", ["expires_at"], postgresql_where=sa.text("status = 'active'")
    )

    op.create_table(
        "usage_charges",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("reference_id", sa.String(200), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("duration_seconds", sa.Integer),
        sa.Column("billable_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("quota_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("paid_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("charged", sa.BigInteger, nullable=False),
        sa.Column("owed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("quota_refunded_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("plan_id", sa.String(40)),
        sa.Column("hold_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.UniqueConstraint("tenant_id", "kind", "reference_id", name="usage_charges_once"),
        sa.CheckConstraint(
            "amount >= 0 AND charged >= 0 AND owed >= 0 AND charged + owed <= amount",
            name="usage_charges_amounts",
        ),
        sa.CheckConstraint("refunded >= 0 AND refunded <= amount", name="usage_charges_refunds_within"),
    )
    op.create_index(
        "usage_charges_owed", "usage_charges", ["tenant_id", "id"], postgresql_where=sa.text("owed > 0")
    )

    op.create_table(
        "charge_refunds",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("charge_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("to_wallet", sa.BigInteger, nullable=False),
        sa.Column("forgiven", sa.BigInteger, nullable=False),
        sa.Column("quota_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.CheckConstraint("amount > 0 OR quota_seconds > 0", name="charge_refunds_something"),
    )
    op.create_index("charge_refunds_charge", "charge_refunds", ["tenant_id", "charge_id"])


def downgrade() -> None:
    op.drop_table("charge_refunds")
    op.drop_table("usage_charges")
    op.drop_table("holds")
    op.drop_constraint("wallets_owed_nonnegative", "wallets")
    for column in ("owed", "spent_today", "spent_day", "daily_spend_cap", "max_concurrent_calls"):
        op.drop_column("wallets", column)
    op.drop_table("billing_defaults")
    op.drop_table("subscriptions")
    op.drop_table("plans")
