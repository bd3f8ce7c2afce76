"""Foundation: tenants, wallets, the append-only ledger, API keys, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())]


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("country", sa.String(3), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("data_residency_region", sa.Text),
        sa.Column("payments_provider", sa.Text),
        *_timestamps(),
        sa.CheckConstraint("payments_provider IN ('stripe', 'razorpay')", name="tenants_provider_known"),
    )
    op.create_table(
        "wallets",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("low_balance_threshold", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("flagged", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("ledger_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("auto_topup_enabled", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("auto_topup_threshold", sa.BigInteger),
        sa.Column("auto_topup_amount", sa.BigInteger),
        *_timestamps(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("reserved >= 0", name="wallets_reserved_nonnegative"),
        sa.CheckConstraint("low_balance_threshold >= 0", name="wallets_threshold_nonnegative"),
    )
    # Hot wallets are updated hundreds of times a second: leave room on the page for HOT updates.
    op.execute("ALTER TABLE wallets SET (fillfactor = 70)")

    op.create_table(
        "ledger_entries",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance_before", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("counter_account", sa.Text, nullable=False),
        sa.Column("reference_type", sa.Text, nullable=False),
        sa.Column("reference_id", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("allow_negative", sa.Boolean, nullable=False, server_default="false"),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.UniqueConstraint("tenant_id", "seq", name="ledger_entries_tenant_seq_key"),
        sa.CheckConstraint("amount <> 0", name="ledger_amount_nonzero"),
        sa.CheckConstraint("balance_after = balance_before + amount", name="ledger_balance_arithmetic"),
        sa.CheckConstraint("seq > 0", name="ledger_seq_positive"),
    )
    op.create_index("ledger_entries_tenant_reference", "ledger_entries", ["tenant_id", "reference_id"])
    op.create_index("ledger_entries_tenant_type_id", "ledger_entries", ["tenant_id", "type", "id"])
    op.create_index("ledger_entries_id", "ledger_entries", ["id"])
    # Append-only, enforced by the database itself: a correction is a new row, never an edit.
    op.execute(
        """
        CREATE FUNCTION ledger_entries_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END;
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER ledger_entries_no_update_delete
        BEFORE UPDATE OR DELETE ON ledger_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_entries_refuse_change()
        """
    )
    op.execute(
        """
        CREATE TRIGGER ledger_entries_no_truncate
        BEFORE TRUNCATE ON ledger_entries
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_refuse_change()
        """
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id")),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        *_timestamps(),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("completed", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("status_code", sa.Integer),
        sa.Column("content_type", sa.Text),
        sa.Column("response_body", sa.LargeBinary),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        *_timestamps(),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_index("idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("api_keys")
    op.execute("DROP TRIGGER ledger_entries_no_truncate ON ledger_entries")
    op.execute("DROP TRIGGER ledger_entries_no_update_delete ON ledger_entries")
    op.drop_table("ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_refuse_change()")
    op.drop_table("wallets")
    op.drop_table("tenants")
