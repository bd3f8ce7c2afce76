"""Period close: plan fees once per subscription period.

- `period_cursors`: per subscription, the oldest period not closed yet (the subscription row's own period
  columns are rolled forward by the charge writer, so they cannot say what was closed).
- `subscription_plan_history`: which plan each period pays for: the latest row effective at the period's
  start (a plan change takes effect from the next period).
- `plan_periods`: one row per closed period, unique per (tenant, period start): what the plan fee was, what
  the wallet paid of it and what is still owed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "period_cursors",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("subscriptions.tenant_id"), primary_key=True),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("period_end", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("period_end > period_start", name="period_cursors_order"),
    )
    op.create_index("period_cursors_due", "period_cursors", ["period_end"])
    op.create_table(
        "subscription_plan_history",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("subscriptions.tenant_id"), nullable=False),
        sa.Column("effective_from", TS, nullable=False),
        sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), nullable=False),
        sa.Column("changed_by", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "effective_from"),
    )
    op.create_table(
        "plan_periods",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("wallets.tenant_id"), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("period_end", TS, nullable=False),
        sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("charged", sa.BigInteger, nullable=False),
        sa.Column("owed", sa.BigInteger, nullable=False),
        sa.Column("quota_used_seconds", sa.BigInteger, nullable=False),
        sa.Column("included_minutes", sa.Integer, nullable=False),
        sa.Column("closed_by", sa.Text, nullable=False),
        sa.Column("closed_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        # The once-per-period guarantee: a second close of the same period (a rerun, another worker)
        # conflicts here and is skipped.
        sa.UniqueConstraint("tenant_id", "period_start", name="plan_periods_once"),
        sa.CheckConstraint("period_end > period_start", name="plan_periods_order"),
        sa.CheckConstraint(
            "fee >= 0 AND charged >= 0 AND owed >= 0 AND fee = charged + owed", name="plan_periods_paid"
        ),
    )
    op.create_index(
        "plan_periods_owed",
        "plan_periods",
        ["tenant_id", "period_start"],
        postgresql_where=sa.text("owed > 0"),
    )
    # Subscriptions opened before this revision: their current period is the first one closed.
    op.execute(
        "INSERT INTO period_cursors (tenant_id, period_start, period_end)"
        " SELECT tenant_id, period_start, period_end FROM subscriptions"
    )
    op.execute(
        "INSERT INTO subscription_plan_history (tenant_id, effective_from, plan_id, changed_by)"
        " SELECT tenant_id, period_start, plan_id, changed_by FROM subscriptions"
    )


def downgrade() -> None:
    op.drop_table("plan_periods")
    op.drop_table("subscription_plan_history")
    op.drop_table("period_cursors")
