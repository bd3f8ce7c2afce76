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
    PaymentState,
    PaymentStatus,
    RefundResult,
    RefundState,
)
from walletsvc.providers.circuit import CircuitBreaker

_REFUND_STATES = {
    "processed": RefundState.SUCCEEDED,
    "pending": RefundState.PENDING,
    "failed": RefundState.FAILED,
}


def payment_money(payment: dict[str, Any]) -> Money:
    return Money(int(payment["amount"]), str(payment["currency"]).upper())


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
    ) -> dict[str, Any]:
        """One call, retried on timeouts and 5xx. Every retried POST is safe: refunds carry
        X-Refund-Idempotency, and a second order for a top-up is never paid twice (its receipt is the
        top-up, which is credited once)."""
        self.breaker.before_call()
        last_error: Exception | None = None
        for _ in range(self.attempts):
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
            body: dict[str, Any] = response.json()
            if response.status_code >= 400:
                description = (body.get("error") or {}).get("description") or "bad request"
                raise InvalidPayment(f"Razorpay refused the request: {description}")
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
        return Checkout(
            kind=CheckoutKind.RAZORPAY_MODAL,
            checkout_id=str(order["id"]),
            payment_id=None,
            data={
                "key_id": self.key_id,
                "order_id": order["id"],
                "amount": int(order["amount"]),
                "currency": str(order["currency"]).upper(),
                "name": request.tenant_name,
                "description": f"Wallet top-up {request.topup_id}",
                "notes": notes,
            },
        )

    async def fetch_payment(self, payment_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/v1/payments/{payment_id}")

    async def payment_status(self, checkout_id: str, kind: CheckoutKind) -> PaymentStatus:
        payments = (await self._request("GET", f"/v1/orders/{checkout_id}/payments")).get("items") or []
        for payment in payments:
            if payment.get("status") == "captured":
                return PaymentStatus(PaymentState.PAID, payment_money(payment), str(payment["id"]))
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
            refund_id=str(refund["id"]),
            state=_REFUND_STATES.get(str(refund.get("status")), RefundState.PENDING),
            amount=Money(int(refund["amount"]), str(refund.get("currency") or amount.currency).upper()),
        )
