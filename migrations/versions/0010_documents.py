"""Documents: top-up invoices, credit notes and monthly statements, numbered without gaps.

- `tenant_billing_details`: the buyer as a tenant's documents name it (legal name, address, tax id).
- `document_counters`: one row per (series, year); a number is taken with `UPDATE ... RETURNING` in the
  issuing transaction, so a rollback gives the number back and concurrent issues queue on the row.
  The series belongs to the seller, not to a tenant: it is the one table without a tenant_id.
- `documents`: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE, as on the ledger); one
  document per source (a top-up, a refund, a tenant's month) and one per number.
- `documents_epoch`: when invoicing began; `ledger verify` expects an invoice for every top-up that
  succeeded from then on (older ones were credited before walletsvc issued documents).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenant_billing_details",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("legal_name", sa.Text, nullable=False),
        sa.Column("address_lines", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("city", sa.Text),
        sa.Column("state", sa.Text),
        sa.Column("postal_code", sa.Text),
        sa.Column("country", sa.String(3), nullable=False),
        sa.Column("tax_id", sa.Text),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "document_counters",
        sa.Column("series", sa.Text, nullable=False),
        sa.Column("year", sa.Integer, nullable=False),  # 0: a series that never resets
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("series", "year"),
        sa.CheckConstraint("last_seq >= 0", name="document_counters_nonnegative"),
    )
    op.create_table(
        "documents",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("series", sa.Text, nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("number", sa.Text, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subtotal", sa.BigInteger, nullable=False),
        sa.Column("tax_total", sa.BigInteger, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("ledger_amount", sa.BigInteger, nullable=False),
        sa.Column("source_type", sa.Text, nullable=False),
        sa.Column("source_id", sa.Text, nullable=False),
        sa.Column("corrects_id", sa.String(40)),
        sa.Column("period_start", TS),
        sa.Column("period_end", TS),
        sa.Column("seller", postgresql.JSONB, nullable=False),
        sa.Column("buyer", postgresql.JSONB, nullable=False),
        sa.Column("lines", postgresql.JSONB, nullable=False),
        sa.Column("taxes", postgresql.JSONB, nullable=False),
        sa.Column("details", postgresql.JSONB, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.UniqueConstraint("series", "year", "seq", name="documents_number_once"),
        sa.UniqueConstraint("number", name="documents_number_unique"),
        sa.UniqueConstraint(
            "tenant_id", "kind", "source_type", "source_id", name="documents_once_per_source"
        ),
        sa.CheckConstraint("kind IN ('invoice', 'credit_note', 'statement')", name="documents_kind_known"),
        sa.CheckConstraint("seq > 0", name="documents_seq_positive"),
        sa.CheckConstraint("total = subtotal + tax_total", name="documents_total_adds_up"),
        sa.CheckConstraint(
            "(kind = 'statement') = (period_start IS NOT NULL AND period_end IS NOT NULL)",
            name="documents_statement_period",
        ),
    )
    op.create_index("documents_tenant_issued", "documents", ["tenant_id", "kind", "issued_at"])
    op.create_index("documents_tenant_source", "documents", ["tenant_id", "source_id"])
    op.execute(
        """
        CREATE FUNCTION documents_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'documents is append-only: % refused (a correction is a credit note)', TG_OP
                USING ERRCODE = 'restrict_violation';
        END;
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER documents_no_update_delete
        BEFORE UPDATE OR DELETE ON documents
        FOR EACH ROW EXECUTE FUNCTION documents_refuse_change()
        """
    )
    op.execute(
        """
        CREATE TRIGGER documents_no_truncate
        BEFORE TRUNCATE ON documents
        FOR EACH STATEMENT EXECUTE FUNCTION documents_refuse_change()
        """
    )
    op.create_table(
        "documents_epoch",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("started_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("id = 1", name="documents_epoch_one_row"),
    )
    op.execute("INSERT INTO documents_epoch (id) VALUES (1)")


def downgrade() -> None:
    op.drop_table("documents_epoch")
    op.execute("DROP TRIGGER documents_no_truncate ON documents")
    op.execute("DROP TRIGGER documents_no_update_delete ON documents")
    op.drop_table("documents")
    op.execute("DROP FUNCTION documents_refuse_change()")
    op.drop_table("document_counters")
    op.drop_table("tenant_billing_details")
