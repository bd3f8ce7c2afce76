"""The event log's types: what happened to a tenant's money, said once, in the transaction that did it."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    TOPUP_SUCCEEDED = "topup.succeeded"
    TOPUP_FAILED = "topup.failed"
    TOPUP_REFUNDED = "topup.refunded"
    ADJUSTMENT_CREATED = "adjustment.created"
    WALLET_FLAGGED = "wallet.flagged"
    WALLET_UNFLAGGED = "wallet.unflagged"
    CHARGE_INSUFFICIENT_FUNDS = "charge.insufficient_funds"
    WALLET_LOW_BALANCE = "wallet.low_balance"
    WALLET_LOW_BALANCE_RESOLVED = "wallet.low_balance_resolved"
    PERIOD_CLOSED = "period.closed"
    PLAN_FEE_CHARGED = "plan_fee.charged"
    PLAN_FEE_OWED = "plan_fee.owed"
    SUBSCRIPTION_CHANGED = "subscription.changed"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"
    INVOICE_ISSUED = "invoice.issued"  # any document: an invoice, a credit note or a statement (`kind`)
    AUTO_TOPUP_SUCCEEDED = "auto_topup.succeeded"
    AUTO_TOPUP_FAILED = "auto_topup.failed"
    AUTO_TOPUP_REQUIRES_ACTION = "auto_topup.requires_action"
    AUTO_TOPUP_DISABLED = "auto_topup.disabled"
    AUTO_TOPUP_CAPPED = "auto_topup.capped"
    AUTO_TOPUP_RUNAWAY_GUARD = "auto_topup.runaway_guard"
    AUTO_TOPUP_PAYMENT_LINK_SENT = "auto_topup.payment_link_sent"


class Delivery(StrEnum):
    """Where an event's dispatch stands: waiting for the worker, fanned out to its webhook deliveries
    and e-mails (each with its own status), or wanted by nobody."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    NO_ENDPOINTS = "no_endpoints"


def money(amount: int, currency: str) -> dict[str, int | str]:
    """Money in a payload, as the API names it: minor units and the currency."""
    return {"amount": amount, "currency": currency}
