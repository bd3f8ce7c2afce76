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


# Endpoints are the platform's (tenant_id is a filter, NULL for every tenant); deliveries and attempts
# carry the event's tenant. Secrets are Fernet ciphertexts (WEBHOOK_SECRETS_KEY), never plain text.
TABLES = [
    """
    CREATE TABLE webhook_endpoints (
        id text PRIMARY KEY,
        tenant_id varchar(64),
        url text NOT NULL,
        description text NOT NULL DEFAULT '',
        event_types text[] NOT NULL DEFAULT '{}',
        enabled boolean NOT NULL DEFAULT true,
        disabled_reason text,
        disabled_at timestamp with time zone,
        secret_ciphertext bytea NOT NULL,
        previous_secret_ciphertext bytea,
        previous_secret_expires_at timestamp with time zone,
        failing_since timestamp with time zone,
        last_success_at timestamp with time zone,
        created_by text NOT NULL,
        created_at timestamp with time zone NOT NULL DEFAULT now(),
        updated_at timestamp with time zone NOT NULL DEFAULT now(),
        deleted_at timestamp with time zone
    )
    """,
    "CREATE INDEX webhook_endpoints_live ON webhook_endpoints (created_at, id) WHERE deleted_at IS NULL",
    """
    CREATE TABLE webhook_deliveries (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id varchar(64) NOT NULL,
        event_id text NOT NULL REFERENCES events (id),
        endpoint_id text NOT NULL REFERENCES webhook_endpoints (id),
        status text NOT NULL DEFAULT 'pending',
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamp with time zone,
        delivered_at timestamp with time zone,
        created_at timestamp with time zone NOT NULL DEFAULT now(),
        updated_at timestamp with time zone NOT NULL DEFAULT now(),
        CONSTRAINT webhook_deliveries_once UNIQUE (event_id, endpoint_id),
        CONSTRAINT webhook_deliveries_status_known
            CHECK (status IN ('pending', 'delivered', 'failed', 'canceled'))
    )
    """,
    "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id) WHERE status = 'pending'",
    """
    CREATE TABLE webhook_attempts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id varchar(64) NOT NULL,
        delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id),
        attempt integer NOT NULL,
        outcome text NOT NULL,
        status_code integer,
        error text,
        response_body text,
        duration_ms integer NOT NULL,
        started_at timestamp with time zone NOT NULL,
        created_at timestamp with time zone NOT NULL DEFAULT now(),
        CONSTRAINT webhook_attempts_once UNIQUE (delivery_id, attempt),
        CONSTRAINT webhook_attempts_outcome_known CHECK (outcome IN ('delivered', 'failed', 'refused'))
    )
    """,
]


def upgrade() -> None:
    op.execute("ALTER TABLE events DROP CONSTRAINT events_delivery_known")
    op.execute(
        "ALTER TABLE events ADD CONSTRAINT events_delivery_known"
        " CHECK (delivery IN ('pending', 'dispatched', 'no_endpoints'))"
    )
    for statement in TABLES:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE webhook_attempts")
    op.execute("DROP TABLE webhook_deliveries")
    op.execute("DROP TABLE webhook_endpoints")
    op.execute("ALTER TABLE events DROP CONSTRAINT events_delivery_known")
    op.execute(
        "ALTER TABLE events ADD CONSTRAINT events_delivery_known CHECK (delivery IN ('pending', 'no_endpoints'))"
    )
