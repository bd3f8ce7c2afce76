"""Stripe: Checkout Sessions, PaymentIntents, customers and refunds, over Stripe's async client on httpx."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import stripe

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
    id_at,
    obj_at,
    paid_status,
    provider_money,
    required_str,
    str_at,
)
from walletsvc.providers.circuit import CircuitBreaker

log = logging.getLogger(__name__)

# The Stripe API version of every request (the Stripe-Version header) and of the webhook endpoint: the
# one the installed SDK's types are written for (stripe._api_version). Pinned here, so that neither an
# SDK upgrade nor the account's default version changes what Stripe answers without a review; a unit
# test fails when the installed SDK is made for another one. Bump both together.
STRIPE_API_VERSION = "2026-10-28.endive"

_REFUND_STATES = {
    "succeeded": RefundState.SUCCEEDED,
    "pending": RefundState.PENDING,
    "requires_action": RefundState.PENDING,
    "failed": RefundState.FAILED,
    "canceled": RefundState.FAILED,
}


def money_of(amount: object, currency: object, *, name: str = "amount", positive: bool = False) -> Money:
    """Stripe's one reading of an amount (events, the return route, reconcile, refund answers): an
    integer of minor units beside its currency, or MalformedPayload. Never coerced."""
    return provider_money(amount, currency, name=name, positive=positive)


class StripeGateway:
    name = ProviderName.STRIPE

    def __init__(
        self,
        *,
        secret_key: str,
        publishable_key: str | None,
        api_base: str,
        return_url: str,
        cancel_url: str,
        timeout: float,
        breaker: CircuitBreaker,
        max_network_retries: int = 2,
    ) -> None:
        self.publishable_key = publishable_key
        self.return_url = return_url
        self.cancel_url = cancel_url
        self.breaker = breaker
        self.client = stripe.StripeClient(
            secret_key,
            stripe_version=STRIPE_API_VERSION,
            http_client=stripe.HTTPXClient(timeout=timeout),
            base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=max_network_retries,
        )

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        """Run one SDK call; answer a plain dict (SDK objects never leave this module)."""
        self.breaker.before_call()
        try:
            result = await call()
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            self.breaker.record_failure()
            raise ProviderUnavailable("Stripe could not be reached or is limiting requests") from exc
        except stripe.AuthenticationError as exc:
            raise ProviderNotConfigured(
                "Stripe refused walletsvc's API key (STRIPE_SECRET_KEY)", settings=("STRIPE_SECRET_KEY",)
            ) from exc
        except stripe.InvalidRequestError as exc:
            self.breaker.record_success()
            if exc.http_status == 404:
                raise NotFound("Stripe object", str(exc.param or "requested")) from exc
            raise InvalidPayment(f"Stripe refused the request: {exc.user_message or exc.code}") from exc
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            if status >= 500 or status == 0:
                self.breaker.record_failure()
                raise ProviderUnavailable("Stripe failed to answer") from exc
            self.breaker.record_success()
            raise InvalidPayment(f"Stripe refused the request: {exc.user_message or exc.code}") from exc
        self.breaker.record_success()
        plain: dict[str, Any] = result.to_dict()
        return plain

    async def ensure_customer(self, *, tenant_id: str, name: str) -> str:
        customer = await self._call(
            lambda: self.client.v1.customers.create_async(
                params={"name": name, "metadata": {"tenant_id": tenant_id}},
                options={"idempotency_key": f"walletsvc:customer:{tenant_id}"},
            )
        )
        return required_str(customer, "id")

    async def create_checkout(self, request: CheckoutRequest, *, customer_id: str | None) -> Checkout:
        metadata = {"topup_id": request.topup_id, "tenant_id": request.tenant_id}
        key = f"walletsvc:topup:{request.topup_id}:checkout"
        currency = request.amount.currency.lower()
        if request.kind is CheckoutKind.CLIENT_SECRET:
            # Gateways.checkout_gateway refuses this before the top-up is written; this is the backstop,
            # before Stripe is asked: the portal could not open Elements with the client secret alone.
            if not self.publishable_key:
                raise ProviderNotConfigured(
                    "Stripe client_secret checkouts are not configured here: set STRIPE_PUBLISHABLE_KEY "
                    "(pk_test_... or pk_live_...)",
                    settings=("STRIPE_PUBLISHABLE_KEY",),
                )
            intent_params: dict[str, Any] = {
                "amount": request.amount.amount,
                "currency": currency,
                "metadata": metadata,
                "description": f"Wallet top-up {request.topup_id}",
                "automatic_payment_methods": {"enabled": True},
            }
            if customer_id:
                intent_params["customer"] = customer_id
            if request.save_payment_method:
                intent_params["setup_future_usage"] = "off_session"
            intent = await self._call(
                lambda: self.client.v1.payment_intents.create_async(
                    params=intent_params,  # type: ignore[arg-type]
                    options={"idempotency_key": key},
                )
            )
            intent_id = required_str(intent, "id")
            return Checkout(
                kind=CheckoutKind.CLIENT_SECRET,
                checkout_id=intent_id,
                payment_id=intent_id,
                data={
                    "client_secret": required_str(intent, "client_secret"),
                    "publishable_key": self.publishable_key,
                    "payment_intent_id": intent_id,
                },
            )
        payment_intent_data: dict[str, Any] = {"metadata": metadata}
        if request.save_payment_method:
            payment_intent_data["setup_future_usage"] = "off_session"
        session_params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": request.topup_id,
            "success_url": f"{self.return_url}?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": self.cancel_url,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency,
                        "unit_amount": request.amount.amount,
                        "product_data": {"name": "Wallet top-up"},
                    },
                }
            ],
            "metadata": metadata,
            "payment_intent_data": payment_intent_data,
        }
        if customer_id:
            session_params["customer"] = customer_id
        session = await self._call(
            lambda: self.client.v1.checkout.sessions.create_async(
                params=session_params,  # type: ignore[arg-type]
                options={"idempotency_key": key},
            )
        )
        expires_at = session.get("expires_at")
        return Checkout(
            kind=CheckoutKind.REDIRECT,
            checkout_id=required_str(session, "id"),
            payment_id=id_at(session, "payment_intent"),
            data={
                "url": required_str(session, "url"),
                # shown to the portal only: an unreadable one is left out rather than refused
                "expires_at": expires_at if type(expires_at) is int else None,
            },
        )

    async def retrieve_session(self, session_id: str) -> tuple[str | None, str | None, PaymentStatus]:
        """The top-up and tenant a Checkout Session belongs to, and its payment state."""
        session = await self._call(lambda: self.client.v1.checkout.sessions.retrieve_async(session_id))
        metadata = obj_at(session, "metadata")
        return (
            str_at(session, "client_reference_id") or str_at(metadata, "topup_id"),
            str_at(metadata, "tenant_id"),
            session_status(session),
        )

    async def payment_status(self, checkout_id: str, kind: CheckoutKind) -> PaymentStatus:
        if kind is CheckoutKind.CLIENT_SECRET:
            intent = await self._call(lambda: self.client.v1.payment_intents.retrieve_async(checkout_id))
            return intent_status(intent)
        session = await self._call(lambda: self.client.v1.checkout.sessions.retrieve_async(checkout_id))
        return session_status(session)

    async def refund(
        self, *, payment_id: str, amount: Money, refund_id: str, topup_id: str, tenant_id: str, reason: str
    ) -> RefundResult:
        refund = await self._call(
            lambda: self.client.v1.refunds.create_async(
                params={
                    "payment_intent": payment_id,
                    "amount": amount.amount,
                    "reason": "requested_by_customer",
                    "metadata": {
                        "walletsvc_refund_id": refund_id,
                        "topup_id": topup_id,
                        "tenant_id": tenant_id,
                    },
                },
                options={"idempotency_key": f"walletsvc:refund:{refund_id}"},
            )
        )
        return RefundResult(
            refund_id=required_str(refund, "id"),
            state=_REFUND_STATES.get(str_at(refund, "status") or "", RefundState.PENDING),
            amount=money_of(refund.get("amount"), refund.get("currency"), positive=True),
        )


def warn_if_other_api_version(event_id: str, event_type: str, api_version: object) -> None:
    """An event rendered for another API version may be shaped differently from what this module
    reads: it is still handled, and said in the log (its id and version, never the payload), so the
    webhook endpoint can be re-created with STRIPE_API_VERSION."""
    if api_version is None or api_version == STRIPE_API_VERSION:
        return
    version = str(api_version)[:64]
    log.warning(
        "Stripe event %s (%s) is of API version %s, but walletsvc reads %s: create the webhook "
        "endpoint with that API version",
        event_id[:255],
        event_type[:255],
        version,
        STRIPE_API_VERSION,
        extra={
            "event_id": event_id[:255],
            "api_version": version,
            "expected_api_version": STRIPE_API_VERSION,
        },
    )


def session_status(session: dict[str, Any]) -> PaymentStatus:
    """The one reading of a Checkout Session (webhook, return route, reconcile). Paid with an amount
    that is missing or malformed: PAID with no amount, which flags the top-up."""
    payment_id = id_at(session, "payment_intent")
    if str_at(session, "payment_status") == "paid":
        return paid_status(
            session.get("amount_total"), session.get("currency"), payment_id, name="amount_total"
        )
    if str_at(session, "status") == "expired":
        return PaymentStatus(PaymentState.FAILED, None, payment_id, "the checkout session expired")
    return PaymentStatus(PaymentState.PENDING, None, payment_id)


def intent_status(intent: dict[str, Any]) -> PaymentStatus:
    """The one reading of a PaymentIntent (webhook, reconcile)."""
    status = str_at(intent, "status")
    intent_id = str_at(intent, "id")
    if status == "succeeded":
        return paid_status(
            intent.get("amount_received"), intent.get("currency"), intent_id, name="amount_received"
        )
    if status == "canceled":
        return PaymentStatus(PaymentState.FAILED, None, intent_id, "the payment was canceled")
    reason = str_at(obj_at(intent, "last_payment_error"), "message")
    return PaymentStatus(PaymentState.PENDING, None, intent_id, reason)
