"""Low-balance alert state on wallets: one wallet.low_balance a day, one resolved when it climbs back.

`low_balance_since`: since when the wallet's available balance is below its threshold (NULL: it is not).
`low_balance_alerted_at`: when the last `wallet.low_balance` was recorded for the tenant. A wallet that is
low already when this runs starts its spell now, unannounced: its next balance change announces it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE wallets
            ADD COLUMN low_balance_since timestamptz,
            ADD COLUMN low_balance_alerted_at timestamptz
        """
    )
    op.execute(
        """
        UPDATE wallets SET low_balance_since = now()
         WHERE low_balance_threshold > 0 AND balance - reserved < low_balance_threshold
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE wallets DROP COLUMN low_balance_alerted_at, DROP COLUMN low_balance_since")
