"""Refund intents: the money a refund will take is held on the wallet until the provider answers; a
refund the provider reports wrongly is flagged for review; one walletsvc refund per provider refund.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # What this refund keeps reserved on the wallet (part of wallets.reserved) until it is debited or fails.
    op.add_column("topup_refunds", sa.Column("held", sa.BigInteger, nullable=False, server_default="0"))
    op.create_check_constraint("topup_refunds_held_not_negative", "topup_refunds", "held >= 0")
    op.drop_constraint("topup_refunds_status_known", "topup_refunds", type_="check")
    op.create_check_constraint(
        "topup_refunds_status_known",
        "topup_refunds",
        "status IN ('pending', 'succeeded', 'failed', 'flagged')",
    )
    # A provider's refund is one walletsvc refund, never two (tenant_id first: the table is distributed by it).
    op.drop_index("topup_refunds_provider_id", table_name="topup_refunds")
    op.create_index(
        "topup_refunds_provider_id",
        "topup_refunds",
        ["tenant_id", "provider_refund_id"],
        unique=True,
        postgresql_where=sa.text("provider_refund_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("topup_refunds_provider_id", table_name="topup_refunds")
    op.create_index("topup_refunds_provider_id", "topup_refunds", ["provider_refund_id"])
    op.drop_constraint("topup_refunds_status_known", "topup_refunds", type_="check")
    op.create_check_constraint(
        "topup_refunds_status_known", "topup_refunds", "status IN ('pending', 'succeeded', 'failed')"
    )
    op.drop_constraint("topup_refunds_held_not_negative", "topup_refunds", type_="check")
    op.drop_column("topup_refunds", "held")
