"""Razorpay recurring mandates (card or UPI AutoPay tokens) as saved payment methods of INR tenants.

`payment_methods` gains what a mandate needs beside a card's details: the token (known once the
authorization payment is made), the authorization order and the top-up that carries its payment, a
masked VPA (UPI), when it ends, and why it is not usable. Its status now follows Razorpay's token:
pending, active, paused, rejected, cancelled (and detached, deleted by the owner; expired, a registration
whose authorization payment was never made).
`razorpay_customers`: the tenant's Razorpay customer, which the tokens belong to, and the mandate the owner
chose as the default (`PUT /v1/payment-methods/{id}/default`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE payment_methods
            ADD COLUMN token_id text,
            ADD COLUMN auth_order_id text,
            ADD COLUMN auth_topup_id varchar(40),
            ADD COLUMN vpa text,
            ADD COLUMN expires_at timestamptz,
            ADD COLUMN status_reason text
        """
    )
    op.execute("ALTER TABLE payment_methods DROP CONSTRAINT payment_methods_status_known")
    op.execute(
        """
        ALTER TABLE payment_methods ADD CONSTRAINT payment_methods_status_known CHECK (
            status IN ('active', 'detached', 'pending', 'paused', 'rejected', 'cancelled', 'expired')
        )
        """
    )
    # Razorpay's token events name the token (or the authorization order), never the tenant.
    op.execute(
        "CREATE UNIQUE INDEX payment_methods_by_token ON payment_methods (provider, token_id)"
        " WHERE token_id IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX payment_methods_by_auth_order ON payment_methods (auth_order_id)"
        " WHERE auth_order_id IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE razorpay_customers (
            tenant_id varchar(64) PRIMARY KEY,
            customer_id text NOT NULL,
            default_payment_method text,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE razorpay_customers")
    op.execute("DROP INDEX payment_methods_by_auth_order")
    op.execute("DROP INDEX payment_methods_by_token")
    op.execute("DELETE FROM payment_methods WHERE provider = 'razorpay'")
    op.execute("ALTER TABLE payment_methods DROP CONSTRAINT payment_methods_status_known")
    op.execute(
        "ALTER TABLE payment_methods ADD CONSTRAINT payment_methods_status_known"
        " CHECK (status IN ('active', 'detached'))"
    )
    op.execute(
        """
        ALTER TABLE payment_methods
            DROP COLUMN token_id, DROP COLUMN auth_order_id, DROP COLUMN auth_topup_id,
            DROP COLUMN vpa, DROP COLUMN expires_at, DROP COLUMN status_reason
        """
    )
