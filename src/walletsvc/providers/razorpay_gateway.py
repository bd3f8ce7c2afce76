"""Razorpay: orders, payments and refunds over its REST API with httpx (the SDK is synchronous)."""

from __future__ import annotations

from typing import Any

import httpx

from walletsvc.domain.errors import InvalidPayment, NotFound, ProviderNotConfigured, ProviderUnavailable
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind
from walletsvc.providers.base import (
    Checkout,
    CheckoutRequest,
    MalformedPayload,
    PaymentState,
    PaymentStatus,
    RefundResult,
    RefundState,
    obj_at,
    objects_at,
    paid_status,
    provider_money,
    required_str,
    shown,
    str_at,
)
from walletsvc.providers.circuit import CircuitBreaker

_REFUND_STATES = {
    "processed": RefundState.SUCCEEDED,
    "pending": RefundState.PENDING,
    "failed": RefundState.FAILED,
}


def payment_status_of(payment: dict[str, Any]) -> PaymentStatus:
    """The one reading of a Razorpay payment entity (webhook, verify's fetch, reconcile's order list).
    Captured with an amount that is missing or malformed: PAID with no amount, which flags the top-up."""
    payment_id = str_at(payment, "id")
    status = str_at(payment, "status")
    if status == "captured":
        return paid_status(payment.get("amount"), payment.get("currency"), payment_id, name="amount")
    if status == "failed":
        reason = str_at(payment, "error_description") or "the payment failed"
        return PaymentStatus(PaymentState.FAILED, None, payment_id, reason)
    return PaymentStatus(PaymentState.PENDING, None, payment_id)


def refund_money(refund: dict[str, Any], *, currency: str) -> Money:
    """A refund entity's amount (webhook or API answer): a positive integer of minor units, or
    MalformedPayload. `currency` stands in when the entity names none."""
    return provider_money(
        refund.get("amount"), str_at(refund, "currency") or currency, name="amount", positive=True
    )


def notes_of(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity's notes. Razorpay sends an empty list when there are none."""
    if entity.get("notes") == []:
        return {}
    return obj_at(entity, "notes")


class RazorpayGateway:
    name = ProviderName.RAZORPAY

    def __init__(
        self,
        *,
        key_id: str,
        key_secret: str,
        api_base: str,
        timeout: float,
        breaker: CircuitBreaker,
        attempts: int = 3,
    ) -> None:
        self.key_id = key_id
        self.breaker = breaker
        self.attempts = attempts
        self.http = httpx.AsyncClient(
            base_url=api_base.rstrip("/"), auth=(key_id, key_secret), timeout=timeout
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        attempts: int | None = None,
    ) -> dict[str, Any]:
        """One call, retried on timeouts and 5xx. Every retried POST is safe: refunds carry
        X-Refund-Idempotency, and a second order for a top-up is never paid twice (its receipt is the
        top-up, which is credited once). A call that is not safe to repeat (a recurring debit) passes
        `attempts=1`: its caller looks first at what the lost answer may have made."""
        self.breaker.before_call()
        last_error: Exception | None = None
        for _ in range(attempts or self.attempts):
            try:
                response = await self.http.request(method, path, json=json, headers=headers)
            except httpx.HTTPError as exc:
                last_error = exc
                continue
            if response.status_code >= 500:
                last_error = httpx.HTTPStatusError(
                    "server error", request=response.request, response=response
                )
                continue
            self.breaker.record_success()
            if response.status_code in (401, 403):
                raise ProviderNotConfigured("Razorpay refused walletsvc's key id and secret")
            if response.status_code == 404:
                raise NotFound("Razorpay object", path.rsplit("/", 1)[-1])
            try:
                body = response.json()
            except ValueError:
                body = None
            if response.status_code >= 400:
                error = body.get("error") if isinstance(body, dict) else None
                description = error.get("description") if isinstance(error, dict) else None
                if not isinstance(description, str) or not description:
                    description = "bad request"
                raise InvalidPayment(f"Razorpay refused the request: {description[:200]}")
            if not isinstance(body, dict):
                raise MalformedPayload(f"Razorpay answered {shown(body)}, not a JSON object")
            return body
        self.breaker.record_failure()
        raise ProviderUnavailable("Razorpay could not be reached or failed to answer") from last_error

    async def create_checkout(self, request: CheckoutRequest, *, customer_id: str | None) -> Checkout:
        notes = {"topup_id": request.topup_id, "tenant_id": request.tenant_id}
        order = await self._request(
            "POST",
            "/v1/orders",
            json={
                "amount": request.amount.amount,
                "currency": request.amount.currency,
                "receipt": request.topup_id,
                "notes": notes,
            },
        )
        order_id = required_str(order, "id")
        amount = provider_money(order.get("amount"), order.get("currency"), name="amount", positive=True)
        return Checkout(
            kind=CheckoutKind.RAZORPAY_MODAL,
            checkout_id=order_id,
            payment_id=None,
            data={
                "key_id": self.key_id,
                "order_id": order_id,
                "amount": amount.amount,
                "currency": amount.currency,
                "name": request.tenant_name,
                "description": f"Wallet top-up {request.topup_id}",
                "notes": notes,
            },
        )

    async def fetch_payment(self, payment_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/v1/payments/{payment_id}")

    async def payment_status(self, checkout_id: str, kind: CheckoutKind) -> PaymentStatus:
        if checkout_id.startswith("plink_"):  # an auto top-up's payment link (providers/razorpay_links.py)
            from walletsvc.providers.razorpay_links import link_status

            return await link_status(self, checkout_id)
        answer = await self._request("GET", f"/v1/orders/{checkout_id}/payments")
        for payment in objects_at(answer, "items"):
            if str_at(payment, "status") == "captured":
                return payment_status_of(payment)
        # A failed attempt does not end an order: the customer may pay again on the same order.
        return PaymentStatus(PaymentState.PENDING, None, None)

    async def refund(
        self, *, payment_id: str, amount: Money, refund_id: str, topup_id: str, tenant_id: str, reason: str
    ) -> RefundResult:
        refund = await self._request(
            "POST",
            f"/v1/payments/{payment_id}/refund",
            json={
                "amount": amount.amount,
                "receipt": refund_id,
                "notes": {"walletsvc_refund_id": refund_id, "topup_id": topup_id, "tenant_id": tenant_id},
            },
            headers={"X-Refund-Idempotency": refund_id},
        )
        return RefundResult(
            refund_id=required_str(refund, "id"),
            state=_REFUND_STATES.get(str_at(refund, "status") or "", RefundState.PENDING),
            amount=refund_money(refund, currency=amount.currency),
        )
