"""Razorpay recurring payments: the customer, the authorization order that registers a token (card or UPI
AutoPay), reading a token, cancelling one, and the debit on it (an order, then
`POST /v1/payments/create/recurring`), on RazorpayGateway's client. Plain values only leave this module.

The debit is made safe to repeat by the caller's order of calls, not by Razorpay (which has no idempotency
key for payments): the order's receipt is the top-up's id, so a resumed job finds the order it made, and
the order's payments are read before a payment is asked for, so a crash after Razorpay made one never
makes a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from walletsvc.domain.errors import InvalidPayment
from walletsvc.domain.mandates import MandateStatus, mask_vpa, status_of_token
from walletsvc.domain.money import Money
from walletsvc.providers.base import (
    PaymentState,
    PaymentStatus,
    obj_at,
    objects_at,
    required_str,
    str_at,
)
from walletsvc.providers.razorpay_gateway import RazorpayGateway, payment_status_of

# --- registration ---------------------------------------------------------------------------------------


async def ensure_customer(gateway: RazorpayGateway, *, tenant_id: str, name: str, email: str | None) -> str:
    """The tenant's Razorpay customer. `fail_existing: "0"` answers the existing one for the same details,
    so a retry after a lost answer makes no second customer."""
    body: dict[str, Any] = {"name": name[:50], "fail_existing": "0", "notes": {"tenant_id": tenant_id}}
    if email:
        body["email"] = email
    return required_str(await gateway._request("POST", "/v1/customers", json=body), "id")


async def find_order(gateway: RazorpayGateway, receipt: str) -> dict[str, Any] | None:
    """The order made earlier under this receipt (walletsvc's receipts are unique ids), if any."""
    answer = await gateway._request("GET", f"/v1/orders?receipt={quote(receipt)}")
    for order in objects_at(answer, "items"):
        if str_at(order, "receipt") == receipt:
            return order
    return None


async def authorization_order(
    gateway: RazorpayGateway,
    *,
    receipt: str,
    customer_id: str,
    method: str,
    amount: Money,
    max_amount: int,
    expire_at: int,
    notes: dict[str, str],
) -> str:
    """The order the customer pays in Checkout (`recurring: "1"`) to register the token; found again by
    its receipt on a retry."""
    found = await find_order(gateway, receipt)
    if found is not None:
        return required_str(found, "id")
    order = await gateway._request(
        "POST",
        "/v1/orders",
        json={
            "amount": amount.amount,
            "currency": amount.currency,
            "customer_id": customer_id,
            "method": method,
            "receipt": receipt,
            "payment_capture": True,
            "notes": notes,
            "token": {"max_amount": max_amount, "expire_at": expire_at, "frequency": "as_presented"},
        },
    )
    return required_str(order, "id")


async def cancel_token(gateway: RazorpayGateway, *, customer_id: str, token_id: str) -> None:
    """Delete the token at Razorpay: no debit can be made on it any more."""
    await gateway._request("DELETE", f"/v1/customers/{customer_id}/tokens/{token_id}")


async def fetch_token(gateway: RazorpayGateway, *, customer_id: str, token_id: str) -> dict[str, Any]:
    """The token entity as Razorpay keeps it now (`recurring_details.status`: initiated, confirmed, ...)."""
    return await gateway._request("GET", f"/v1/customers/{customer_id}/tokens/{token_id}")


@dataclass(frozen=True, slots=True)
class AuthorizationPayment:
    """What the authorization order's payments say: the token they registered (and its customer), and
    whether a payment is still under way (so the registration is not abandoned yet)."""

    token_id: str | None
    customer_id: str | None
    in_progress: bool


async def authorization_payment(gateway: RazorpayGateway, order_id: str) -> AuthorizationPayment:
    """Read the order's payments (`GET /v1/orders/{id}/payments`); a payment that names no token there is
    fetched on its own (`GET /v1/payments/{id}` carries `token_id` for a recurring payment)."""
    payments = await order_payments(gateway, order_id)
    live = [p for p in payments if str_at(p, "status") != "failed"]
    for payment in sorted(live, key=_created_at, reverse=True):
        token_id = str_at(payment, "token_id")
        payment_id = str_at(payment, "id")
        if token_id is None and payment_id is not None:
            payment = await gateway.fetch_payment(payment_id)
            token_id = str_at(payment, "token_id")
        if token_id is not None:
            return AuthorizationPayment(token_id, str_at(payment, "customer_id"), in_progress=True)
    return AuthorizationPayment(None, None, in_progress=bool(live))


# --- reading a token ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenDetails:
    token_id: str
    status: MandateStatus | None  # None: a state walletsvc does not know
    kind: str  # card or upi
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    vpa: str | None  # masked
    max_amount: int | None
    expires_at: datetime | None
    customer_id: str | None
    failure_reason: str | None


def _small_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if type(value) is int and 0 < value < 10_000 else None


def _positive_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if type(value) is int and value > 0 else None


def token_details(token: dict[str, Any], *, state: str | None = None) -> TokenDetails:
    """What walletsvc keeps of a token entity (webhook or API): the card's network, last 4 and expiry, or
    the masked VPA; the limit and the end; its state (`state`, e.g. the event's, wins over the entity's)."""
    recurring = obj_at(token, "recurring_details")
    card = obj_at(token, "card")
    vpa = obj_at(token, "vpa")
    vpa_text = (
        f"{str_at(vpa, 'username') or ''}@{str_at(vpa, 'handle') or ''}"
        if vpa
        else str_at(token, "vpa")
        if isinstance(token.get("vpa"), str)
        else None
    )
    last4 = str_at(card, "last4")
    expired_at = _positive_int(token, "expired_at")
    return TokenDetails(
        token_id=required_str(token, "id"),
        status=status_of_token(state or str_at(recurring, "status") or str_at(token, "status")),
        kind="upi" if str_at(token, "method") == "upi" else "card",
        brand=(str_at(card, "network") or "")[:32] or None,
        last4=last4 if last4 is not None and len(last4) == 4 and last4.isdigit() else None,
        exp_month=_small_int(card, "expiry_month"),
        exp_year=_small_int(card, "expiry_year"),
        vpa=mask_vpa(vpa_text),
        max_amount=_positive_int(token, "max_amount"),
        expires_at=datetime.fromtimestamp(expired_at, UTC) if expired_at else None,
        customer_id=str_at(token, "customer_id"),
        failure_reason=(str_at(recurring, "failure_reason") or "")[:500] or None,
    )


# --- the debit ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MandateDebit:
    """How a debit on a mandate stands: PAID (captured, for the amount Razorpay names), PENDING (UPI's
    pre-debit notification: Razorpay debits later and says so by webhook), FAILED (declined), or `refused`
    (Razorpay would not debit the mandate at all: it is no longer usable)."""

    status: PaymentStatus
    order_id: str | None
    refused: bool = False
    code: str | None = None


def debit_of(payment: dict[str, Any], order_id: str) -> MandateDebit:
    status = payment_status_of(payment)
    code = str_at(payment, "error_code") if status.state is PaymentState.FAILED else None
    return MandateDebit(status, order_id, code=code or None)


async def debit_mandate(
    gateway: RazorpayGateway,
    *,
    receipt: str,
    amount: Money,
    customer_id: str,
    token_id: str,
    email: str | None,
    notes: dict[str, str],
    description: str,
    may_debit: bool = True,
) -> MandateDebit:
    """Debit the mandate once for this receipt: find or make the order, read its payments (a debit made
    before a crash or a lost answer is the answer), and only then ask for the recurring payment, once
    (`attempts=1`: a timeout is answered by reading the order's payments on the next try, never by
    asking again blindly). ProviderUnavailable: ask again later, the same way.

    `may_debit` False (the mandate was deleted or ended meanwhile): what was made before is still read and
    answered, but no new payment is asked for; with none, the answer is `refused`."""
    order = await find_order(gateway, receipt)
    if order is None and not may_debit:
        return _unusable(None)
    if order is None:
        order = await gateway._request(
            "POST",
            "/v1/orders",
            json={
                "amount": amount.amount,
                "currency": amount.currency,
                "receipt": receipt,
                "payment_capture": True,
                "notes": notes,
            },
        )
    order_id = required_str(order, "id")
    existing = await order_payments(gateway, order_id)
    if existing:
        return debit_of(_latest(existing), order_id)
    if not may_debit:
        return _unusable(order_id)
    body: dict[str, Any] = {
        "amount": amount.amount,
        "currency": amount.currency,
        "order_id": order_id,
        "customer_id": customer_id,
        "token": token_id,
        "recurring": "1",
        "description": description,
        "notes": notes,
    }
    if email:
        body["email"] = email
    try:
        answer = await gateway._request("POST", "/v1/payments/create/recurring", json=body, attempts=1)
    except InvalidPayment as exc:
        # Razorpay refused to debit the token (cancelled, paused, rejected, over its limit, expired).
        return MandateDebit(
            PaymentStatus(PaymentState.FAILED, None, None, exc.detail),
            order_id,
            refused=True,
            code="mandate_refused",
        )
    payment_id = required_str(answer, "razorpay_payment_id")
    return debit_of(await gateway.fetch_payment(payment_id), order_id)


def _unusable(order_id: str | None) -> MandateDebit:
    reason = "the mandate was deleted or is no longer usable"
    return MandateDebit(
        PaymentStatus(PaymentState.FAILED, None, None, reason),
        order_id,
        refused=True,
        code="mandate_unusable",
    )


async def order_payments(gateway: RazorpayGateway, order_id: str) -> list[dict[str, Any]]:
    return objects_at(await gateway._request("GET", f"/v1/orders/{order_id}/payments"), "items")


def _latest(payments: list[dict[str, Any]]) -> dict[str, Any]:
    """A captured payment if there is one, else the newest."""
    for payment in payments:
        if str_at(payment, "status") == "captured":
            return payment
    return max(payments, key=_created_at)


def _created_at(payment: dict[str, Any]) -> int:
    value = payment.get("created_at")
    return value if type(value) is int else 0
