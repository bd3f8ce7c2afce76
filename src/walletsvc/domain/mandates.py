"""Razorpay recurring mandates (card or UPI AutoPay tokens): their states and what may be charged on one.

Pure: the services read Razorpay's token and walletsvc's row, these functions decide.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

MANDATE_PREFIX = "mdt"
MANDATE_METHODS = ("card", "upi")


class MandateStatus(StrEnum):
    PENDING = (
        "pending"  # the authorization order exists; the customer has not finished (or the bank is on it)
    )
    ACTIVE = "active"  # token.confirmed: auto top-up may charge it
    PAUSED = "paused"  # the customer paused it (UPI AutoPay): not charged until resumed
    REJECTED = "rejected"  # the bank refused the registration, or Razorpay refused a debit on it
    CANCELLED = "cancelled"  # cancelled by the customer, the bank or Razorpay
    DETACHED = "detached"  # deleted by the owner (and cancelled at Razorpay)
    EXPIRED = "expired"  # its authorization payment was never made: the registration was abandoned


# A registration whose authorization order nobody paid (Checkout closed, the tab lost) ends after this: the
# owner registers again. A payment in progress (UPI's approval in the app, the bank's confirmation) keeps it.
AUTHORIZATION_EXPIRES_AFTER = timedelta(hours=24)


# Razorpay's token states (`recurring_details.status`, or the event's name) as walletsvc keeps them.
_TOKEN_STATES = {
    "initiated": MandateStatus.PENDING,
    "confirmed": MandateStatus.ACTIVE,
    "resumed": MandateStatus.ACTIVE,
    "paused": MandateStatus.PAUSED,
    "rejected": MandateStatus.REJECTED,
    "cancelled": MandateStatus.CANCELLED,
}


def status_of_token(state: str | None) -> MandateStatus | None:
    """A token state (or a `token.<state>` event's suffix) as a mandate status; None for one unknown."""
    return _TOKEN_STATES.get(state or "")


def mask_vpa(vpa: str | None) -> str | None:
    """A UPI id shown as `ab****@okhdfc`: enough for the owner to recognise it, not to reuse it."""
    if not vpa or "@" not in vpa:
        return None
    user, _, handle = vpa.partition("@")
    return f"{user[:2]}{'*' * 4}@{handle}"[:64]


def mandate_covers(
    *, status: str, max_amount: int | None, expires_at: datetime | None, amount: int, now: datetime
) -> bool:
    """Whether a debit of `amount` may go on this mandate: active, within its limit, not expired."""
    if status != MandateStatus.ACTIVE.value:
        return False
    if max_amount is not None and amount > max_amount:
        return False
    return expires_at is None or expires_at > now


def authorization_abandoned(*, created_at: datetime, now: datetime, payment_in_progress: bool) -> bool:
    """Whether a pending mandate with no token is given up: nothing paid or under way on its order for
    AUTHORIZATION_EXPIRES_AFTER (a failed attempt does not count: the customer may have closed Checkout)."""
    return not payment_in_progress and now - created_at >= AUTHORIZATION_EXPIRES_AFTER


def order_receipt(topup_id: str) -> str:
    """The order's receipt (at most 40 characters at Razorpay): the top-up's id, so a resumed job finds
    the order it made before instead of making another."""
    return topup_id[:40]
