"""Auto top-up: saved payment methods, the settings, and one row per attempt.

`payment_methods`: what walletsvc knows of a tenant's saved Stripe cards (brand, last 4, expiry, never
more). The default one is `stripe_customers.default_payment_method`.
`auto_topup_settings`: the owner's (or an admin's) settings, the admin lock, and the runner's own state
(consecutive failures, why it disabled itself, when the last `auto_topup.capped` was sent).
`auto_topups`: one row per attempt. The partial unique index `auto_topups_one_in_flight` is the guarantee
that at most one is in flight per tenant (created, processing, requires_action), however many charges
cross the threshold at once.
`wallets.auto_topup_paused_until`: the charge writer's cheap "not now" (back-off after a decline, a cap
reached, one in flight), read with the lock it takes anyway.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE wallets ADD COLUMN auto_topup_paused_until timestamptz")
    op.execute(
        """
        CREATE TABLE payment_methods (
            tenant_id varchar(64) NOT NULL,
            id text NOT NULL,
            provider text NOT NULL,
            kind text NOT NULL DEFAULT 'card',
            customer_id text,
            brand text,
            last4 varchar(4),
            exp_month integer,
            exp_year integer,
            max_amount bigint,
            status text NOT NULL DEFAULT 'active',
            source text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            detached_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            CONSTRAINT payment_methods_status_known CHECK (status IN ('active', 'detached'))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE auto_topup_settings (
            tenant_id varchar(64) PRIMARY KEY,
            enabled boolean NOT NULL DEFAULT false,
            threshold bigint NOT NULL DEFAULT 0,
            amount bigint,
            target_balance bigint,
            payment_method_id text,
            max_per_day integer NOT NULL DEFAULT 2,
            monthly_cap bigint,
            locked boolean NOT NULL DEFAULT false,
            locked_reason text,
            disabled_reason text,
            consecutive_failures integer NOT NULL DEFAULT 0,
            capped_notified_on date,
            guard_notified_at timestamptz,
            updated_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT auto_topup_one_amount CHECK (amount IS NULL OR target_balance IS NULL),
            CONSTRAINT auto_topup_caps_positive CHECK (max_per_day > 0 AND (monthly_cap IS NULL OR monthly_cap > 0))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE auto_topups (
            tenant_id varchar(64) NOT NULL,
            id varchar(40) NOT NULL,
            status text NOT NULL,
            provider text NOT NULL,
            currency varchar(3) NOT NULL,
            amount bigint,
            trigger_available bigint NOT NULL,
            trigger_cause text NOT NULL,
            payment_method_id text,
            topup_id varchar(40),
            provider_payment_id text,
            action_url text,
            failure_reason text,
            failure_code text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            settled_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            CONSTRAINT auto_topups_status_known CHECK (
                status IN ('created', 'processing', 'requires_action', 'succeeded', 'failed', 'refused',
                           'canceled')
            )
        )
        """
    )
    # The database, not only the code, keeps a second auto top-up from starting while one is in flight.
    op.execute(
        """
        CREATE UNIQUE INDEX auto_topups_one_in_flight ON auto_topups (tenant_id)
         WHERE status IN ('created', 'processing', 'requires_action')
        """
    )
    op.execute("CREATE INDEX auto_topups_by_time ON auto_topups (tenant_id, created_at)")
    op.execute("CREATE UNIQUE INDEX auto_topups_by_topup ON auto_topups (tenant_id, topup_id)")


def downgrade() -> None:
    op.execute("DROP TABLE auto_topups")
    op.execute("DROP TABLE auto_topup_settings")
    op.execute("DROP TABLE payment_methods")
    op.execute("ALTER TABLE wallets DROP COLUMN auto_topup_paused_until")
