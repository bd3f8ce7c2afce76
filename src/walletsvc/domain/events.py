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


class Delivery(StrEnum):
    """Where an event's delivery stands. Webhook endpoints do not exist yet: the delivery job records
    that there was nobody to deliver to."""

    PENDING = "pending"
    NO_ENDPOINTS = "no_endpoints"


def money(amount: int, currency: str) -> dict[str, int | str]:
    """Money in a payload, as the API names it: minor units and the currency."""
    return {"amount": amount, "currency": currency}
