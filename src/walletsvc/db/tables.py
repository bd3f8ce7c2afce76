"""Table definitions (SQLAlchemy Core). Every table carries tenant_id so it can be distributed by tenant.

The schema itself is created by the alembic migrations; these definitions are what queries are built from.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()


def _created_at() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("country", String(3), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("data_residency_region", Text),
    Column("payments_provider", Text),
    _created_at(),
)

wallets = Table(
    "wallets",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("reserved", BigInteger, nullable=False, server_default="0"),
    Column("low_balance_threshold", BigInteger, nullable=False, server_default="0"),
    Column("flagged", Boolean, nullable=False, server_default="false"),
    Column("ledger_seq", BigInteger, nullable=False, server_default="0"),
    Column("auto_topup_enabled", Boolean, nullable=False, server_default="false"),
    Column("auto_topup_threshold", BigInteger),
    Column("auto_topup_amount", BigInteger),
    Column("max_concurrent_calls", Integer),
    Column("daily_spend_cap", BigInteger),
    Column("spent_day", Date),
    Column("spent_today", BigInteger, nullable=False, server_default="0"),
    Column("owed", BigInteger, nullable=False, server_default="0"),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_before", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("counter_account", Text, nullable=False),
    Column("reference_type", Text, nullable=False),
    Column("reference_id", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("allow_negative", Boolean, nullable=False, server_default="false"),
    _created_at(),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint("tenant_id", "seq"),
    CheckConstraint("amount <> 0", name="ledger_amount_nonzero"),
    CheckConstraint("balance_after = balance_before + amount", name="ledger_balance_arithmetic"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64)),  # NULL: a platform-wide key
    Column("name", Text, nullable=False),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_by", Text, nullable=False),
    _created_at(),
    Column("revoked_at", DateTime(timezone=True)),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("tenant_id", String(64)),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("completed", Boolean, nullable=False, server_default="false"),
    Column("status_code", Integer),
    Column("content_type", Text),
    Column("response_body", LargeBinary),
    Column("locked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _created_at(),
    PrimaryKeyConstraint("scope", "key"),
)

topups = Table(
    "topups",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(40), nullable=False),
    Column("provider", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("checkout_kind", Text, nullable=False),
    Column("save_payment_method", Boolean, nullable=False, server_default="false"),
    Column("provider_checkout_id", Text),
    Column("provider_payment_id", Text),
    Column("credited_amount", BigInteger),
    Column("bonus_amount", BigInteger),
    Column("bonus_rule_id", Text),
    Column("refunded_amount", BigInteger, nullable=False, server_default="0"),
    Column("status_reason", Text),
    Column("created_by", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("succeeded_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "id"),
)

topup_events = Table(
    "topup_events",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("topup_id", String(40), nullable=False),
    Column("kind", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    _created_at(),
    PrimaryKeyConstraint("tenant_id", "id"),
)

stripe_customers = Table(
    "stripe_customers",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("default_payment_method", Text),
    _created_at(),
)

bonus_rules = Table(
    "bonus_rules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("min_amount", BigInteger, nullable=False),
    Column("percent", Numeric(7, 4)),
    Column("fixed_amount", BigInteger),
    Column("starts_at", DateTime(timezone=True)),
    Column("ends_at", DateTime(timezone=True)),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_by", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("provider", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("tenant_id", String(64)),
    Column("payload", JSONB, nullable=False),
    Column("outcome", Text, nullable=False, server_default=""),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("provider", "event_id"),
)

topup_refunds = Table(
    "topup_refunds",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(40), nullable=False),
    Column("topup_id", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", Text, nullable=False),
    Column("provider_refund_id", Text),
    Column("reason", Text, nullable=False),
    Column("forced", Boolean, nullable=False, server_default="false"),
    Column("debited", Boolean, nullable=False, server_default="false"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("failure_reason", Text),
    Column("created_by", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "id"),
)


def _rate_columns() -> list[Column[object]]:
    return [
        Column("per_minute_rate", Numeric(18, 6), nullable=False),
        Column("billing_increment_seconds", Integer, nullable=False, server_default="60"),
        Column("minimum_billable_seconds", Integer, nullable=False, server_default="0"),
        Column("connection_fee", Numeric(18, 6), nullable=False, server_default="0"),
        Column("sms_price", Numeric(18, 6), nullable=False, server_default="0"),
        Column("email_price", Numeric(18, 6), nullable=False, server_default="0"),
        Column("fax_page_price", Numeric(18, 6), nullable=False, server_default="0"),
        Column("file_transfer_price", Numeric(18, 6), nullable=False, server_default="0"),
    ]


plans = Table(
    "plans",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("monthly_price", BigInteger, nullable=False),
    Column("included_minutes", Integer, nullable=False, server_default="0"),
    *_rate_columns(),
    Column("features", ARRAY(Text), nullable=False, server_default="{}"),
    Column("active", Boolean, nullable=False, server_default="true"),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("plan_id", String(40), nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("quota_used_seconds", BigInteger, nullable=False, server_default="0"),
    Column("changed_by", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

billing_defaults = Table(
    "billing_defaults",
    metadata,
    Column("currency", String(3), primary_key=True),
    *_rate_columns(),
    Column("minimum_balance", BigInteger, nullable=False, server_default="0"),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

holds = Table(
    "holds",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("call_id", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("max_seconds", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_by", Text, nullable=False),
    _created_at(),
    Column("closed_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "call_id"),
)

usage_charges = Table(
    "usage_charges",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("reference_id", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("duration_seconds", Integer),
    Column("billable_seconds", Integer, nullable=False, server_default="0"),
    Column("quota_seconds", Integer, nullable=False, server_default="0"),
    Column("paid_seconds", Integer, nullable=False, server_default="0"),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("charged", BigInteger, nullable=False),
    Column("owed", BigInteger, nullable=False, server_default="0"),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    Column("quota_refunded_seconds", Integer, nullable=False, server_default="0"),
    Column("plan_id", String(40)),
    Column("hold_amount", BigInteger, nullable=False, server_default="0"),
    Column("created_by", Text, nullable=False),
    _created_at(),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint("tenant_id", "kind", "reference_id", name="usage_charges_once"),
)

charge_refunds = Table(
    "charge_refunds",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(40), nullable=False),
    Column("charge_id", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("to_wallet", BigInteger, nullable=False),
    Column("forgiven", BigInteger, nullable=False),
    Column("quota_seconds", Integer, nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    _created_at(),
    PrimaryKeyConstraint("tenant_id", "id"),
)

# --- webhook endpoints and deliveries (migration 0006) ---
# Endpoints are the platform's: tenant_id is an optional filter (NULL: every tenant's events).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", String(64)),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("event_types", ARRAY(Text), nullable=False, server_default="{}"),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("disabled_reason", Text),
    Column("disabled_at", DateTime(timezone=True)),
    Column("secret_ciphertext", LargeBinary, nullable=False),  # Fernet, WEBHOOK_SECRETS_KEY
    Column("previous_secret_ciphertext", LargeBinary),
    Column("previous_secret_expires_at", DateTime(timezone=True)),
    Column("failing_since", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("event_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("event_id", "endpoint_id", name="webhook_deliveries_once"),
    CheckConstraint(
        "status IN ('pending', 'delivered', 'failed', 'canceled')", name="webhook_deliveries_status_known"
    ),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("delivery_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("response_body", Text),
    Column("duration_ms", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    _created_at(),
    UniqueConstraint("delivery_id", "attempt", name="webhook_attempts_once"),
)

# --- billing contacts and e-mails (migration 0007) ---

billing_contacts = Table(
    "billing_contacts",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("emails", ARRAY(Text), nullable=False, server_default="{}"),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row per (event, recipient); the send_email job's outcome: queued, retrying, sent, refused, failed,
# skipped (SMTP not configured).
email_notifications = Table(
    "email_notifications",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("message_id", Text),  # set at the first attempt, then kept: a resend is the same message
    Column("status", Text, nullable=False, server_default="queued"),
    Column("subject", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    _created_at(),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("event_id", "recipient", name="email_notifications_once_per_recipient"),
)

# --- low-balance alerts (migration 0008) ---
# The alert state lives on the wallet row, so the charge writer reads it with the lock it takes anyway and
# writes it in the wallet UPDATE it makes anyway (domain/low_balance.py has the rule).
wallets.append_column(Column("low_balance_since", DateTime(timezone=True)))  # NULL: not low
wallets.append_column(Column("low_balance_alerted_at", DateTime(timezone=True)))  # last wallet.low_balance

# --- period close (migration 0009) ---

# Per subscription, the oldest period not closed yet (the subscription row's period is rolled forward by
# the charge writer, so it cannot say what was closed).
period_cursors = Table(
    "period_cursors",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Which plan a period pays for: the latest row effective at the period's start.
subscription_plan_history = Table(
    "subscription_plan_history",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("plan_id", String(40), nullable=False),
    Column("changed_by", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "effective_from"),
)

# One row per closed period: its plan fee, what the wallet paid of it and what is still owed.
plan_periods = Table(
    "plan_periods",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(40), nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("plan_id", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("charged", BigInteger, nullable=False),
    Column("owed", BigInteger, nullable=False),
    Column("quota_used_seconds", BigInteger, nullable=False),
    Column("included_minutes", Integer, nullable=False),
    Column("closed_by", Text, nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint("tenant_id", "period_start", name="plan_periods_once"),
)

# --- auto top-up (migration 0011) ---
# The charge writer's cheap "not now" for auto top-up (back-off, a cap reached, one in flight).
wallets.append_column(Column("auto_topup_paused_until", DateTime(timezone=True)))

# Saved payment methods: brand, last 4 and expiry only. The default is stripe_customers.default_payment_method.
payment_methods = Table(
    "payment_methods",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("kind", Text, nullable=False, server_default="card"),
    Column("customer_id", Text),
    Column("brand", Text),
    Column("last4", String(4)),
    Column("exp_month", Integer),
    Column("exp_year", Integer),
    Column("max_amount", BigInteger),  # a mandate's limit (Razorpay); NULL: none
    Column("status", Text, nullable=False, server_default="active"),
    Column("source", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("detached_at", DateTime(timezone=True)),
    # --- Razorpay recurring mandates (migration 0012): a token of the tenant's Razorpay customer ---
    Column("token_id", Text),  # known once the authorization payment is made
    Column("auth_order_id", Text),  # the authorization order the customer pays in Checkout
    Column("auth_topup_id", String(40)),  # the top-up that credits the authorization payment
    Column("vpa", Text),  # UPI AutoPay, masked
    Column("expires_at", DateTime(timezone=True)),
    Column("status_reason", Text),  # why it is rejected, cancelled or paused
    PrimaryKeyConstraint("tenant_id", "id"),
)

# --- Razorpay recurring mandates (migration 0012) -------------------------------------------------------
# The tenant's Razorpay customer, whom its mandates' tokens belong to.
razorpay_customers = Table(
    "razorpay_customers",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("default_payment_method", Text),  # the mandate chosen as the default; NULL: the newest active
    _created_at(),
)

auto_topup_settings = Table(
    "auto_topup_settings",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False, server_default="false"),
    Column("threshold", BigInteger, nullable=False, server_default="0"),
    Column("amount", BigInteger),
    Column("target_balance", BigInteger),
    Column("payment_method_id", Text),
    Column("max_per_day", Integer, nullable=False, server_default="2"),
    Column("monthly_cap", BigInteger),
    Column("locked", Boolean, nullable=False, server_default="false"),
    Column("locked_reason", Text),
    Column("disabled_reason", Text),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("capped_notified_on", Date),
    Column("guard_notified_at", DateTime(timezone=True)),
    Column("updated_by", Text, nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row per attempt; at most one in flight per tenant (the partial unique index auto_topups_one_in_flight).
auto_topups = Table(
    "auto_topups",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(40), nullable=False),
    Column("status", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger),
    Column("trigger_available", BigInteger, nullable=False),
    Column("trigger_cause", Text, nullable=False),
    Column("payment_method_id", Text),
    Column("topup_id", String(40)),
    Column("provider_payment_id", Text),
    Column("action_url", Text),
    Column("failure_reason", Text),
    Column("failure_code", Text),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("settled_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "id"),
)

# --- documents (migration 0010) ---

# The buyer as a tenant's documents name it; a document copies it when it is issued.
tenant_billing_details = Table(
    "tenant_billing_details",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("legal_name", Text, nullable=False),
    Column("address_lines", ARRAY(Text), nullable=False, server_default="{}"),
    Column("city", Text),
    Column("state", Text),
    Column("postal_code", Text),
    Column("country", String(3), nullable=False),
    Column("tax_id", Text),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The seller's numbering: one counter per (series, year), taken in the issuing transaction (no tenant_id:
# a series belongs to the issuer, and numbers must run on across tenants).
document_counters = Table(
    "document_counters",
    metadata,
    Column("series", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("series", "year"),
)

# Append-only (a trigger refuses UPDATE / DELETE / TRUNCATE): an issued document never changes.
documents = Table(
    "documents",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("id", String(40), nullable=False),
    Column("kind", Text, nullable=False),
    Column("series", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("number", Text, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal", BigInteger, nullable=False),
    Column("tax_total", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("ledger_amount", BigInteger, nullable=False),
    Column("source_type", Text, nullable=False),
    Column("source_id", Text, nullable=False),
    Column("corrects_id", String(40)),
    Column("period_start", DateTime(timezone=True)),
    Column("period_end", DateTime(timezone=True)),
    Column("seller", JSONB, nullable=False),
    Column("buyer", JSONB, nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("taxes", JSONB, nullable=False),
    Column("details", JSONB, nullable=False),
    _created_at(),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint("series", "year", "seq", name="documents_number_once"),
    UniqueConstraint("number", name="documents_number_unique"),
    UniqueConstraint("tenant_id", "kind", "source_type", "source_id", name="documents_once_per_source"),
)
