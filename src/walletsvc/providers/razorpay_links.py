"""Razorpay Payment Links: the INR auto top-up's fallback when no mandate can be charged. One link per
auto top-up, its `reference_id` the top-up's id (Razorpay refuses a second link with the same one, so a
resumed job finds the first instead of sending another)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from walletsvc.domain.errors import InvalidPayment
from walletsvc.domain.money import Money
from walletsvc.providers.base import (
    PaymentState,
    PaymentStatus,
    obj_at,
    objects_at,
    paid_status,
    provider_money,
    required_str,
    str_at,
)
from walletsvc.providers.razorpay_gateway import RazorpayGateway, notes_of

LINK_PREFIX = "plink_"


@dataclass(frozen=True, slots=True)
class PaymentLink:
    link_id: str
    short_url: str
    amount: Money


def _link_of(entity: dict[str, Any]) -> PaymentLink:
    return PaymentLink(
        link_id=required_str(entity, "id"),
        short_url=required_str(entity, "short_url"),
        amount=provider_money(entity.get("amount"), entity.get("currency"), name="amount", positive=True),
    )


async def create_payment_link(
    gateway: RazorpayGateway,
    *,
    topup_id: str,
    tenant_id: str,
    auto_topup_id: str,
    amount: Money,
    email: str | None,
    name: str,
    callback_url: str | None,
    expire_by: int,
) -> PaymentLink:
    body: dict[str, Any] = {
        "amount": amount.amount,
        "currency": amount.currency,
        "accept_partial": False,
        "description": f"Wallet top-up {topup_id}",
        "reference_id": topup_id,
        "expire_by": expire_by,
        "reminder_enable": True,
        "notes": {"topup_id": topup_id, "tenant_id": tenant_id, "auto_topup_id": auto_topup_id},
        "notify": {"email": email is not None, "sms": False},
        "customer": {"name": name[:100], **({"email": email} if email else {})},
    }
    if callback_url:
        body.update(callback_url=callback_url, callback_method="get")
    try:
        return _link_of(await gateway._request("POST", "/v1/payment_links", json=body))
    except InvalidPayment:
        # A retry after a lost answer: the first link holds the reference id. Find it, never send two.
        found = await find_payment_link(gateway, topup_id)
        if found is None:
            raise
        return found


async def find_payment_link(gateway: RazorpayGateway, reference_id: str) -> PaymentLink | None:
    answer = await gateway._request("GET", f"/v1/payment_links?reference_id={reference_id}")
    for entity in objects_at(answer, "payment_links"):
        if str_at(entity, "reference_id") == reference_id and str_at(entity, "status") != "cancelled":
            return _link_of(entity)
    return None


def link_status_of(link: dict[str, Any], payment: dict[str, Any] | None = None) -> PaymentStatus:
    """The one reading of a payment link (its webhook, reconcile's fetch): paid for what was captured."""
    status = str_at(link, "status")
    if status == "paid":
        captured = payment if payment else _captured_payment(link)
        if captured:
            return paid_status(
                captured.get("amount"),
                captured.get("currency") or link.get("currency"),
                str_at(captured, "id") or str_at(captured, "payment_id"),
                name="amount",
            )
        return paid_status(link.get("amount_paid"), link.get("currency"), None, name="amount_paid")
    if status in ("expired", "cancelled"):
        return PaymentStatus(PaymentState.FAILED, None, None, f"the payment link {status}")
    return PaymentStatus(PaymentState.PENDING, None, None)


def _captured_payment(link: dict[str, Any]) -> dict[str, Any]:
    for payment in objects_at(link, "payments"):
        if str_at(payment, "status") == "captured":
            return payment
    return {}


async def link_status(gateway: RazorpayGateway, link_id: str) -> PaymentStatus:
    return link_status_of(await gateway._request("GET", f"/v1/payment_links/{link_id}"))


def link_topup_id(body: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any], dict[str, Any]]:
    """From a `payment_link.*` webhook's payload: (our top-up id, the link id, the link, the payment)."""
    link = obj_at(obj_at(body, "payment_link"), "entity")
    payment = obj_at(obj_at(body, "payment"), "entity")
    topup_id = str_at(notes_of(link), "topup_id") or str_at(link, "reference_id")
    return topup_id, str_at(link, "id"), link, payment
