"""Provider webhooks: stored once on (provider, event id), then applied. Order is never assumed: every
handler reads the current state and moves it only forward (a late failure never undoes a success)."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.refunds import RefundRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.db.repositories.webhook_events import WebhookEventRepository
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import Topup
from walletsvc.providers.base import PaymentState, PaymentStatus, RefundState
from walletsvc.providers.razorpay_gateway import payment_money
from walletsvc.providers.stripe_gateway import intent_status, money_of, session_status
from walletsvc.services.refunds import debit_refund, settle_provider_refund
from walletsvc.services.topups import fail_topup, settle_status

log = logging.getLogger(__name__)

_located_tenant: ContextVar[str | None] = ContextVar("webhook_tenant", default=None)


async def receive_event(
    session: AsyncSession, provider: ProviderName, event_id: str, event_type: str, payload: dict[str, Any]
) -> str:
    """Store and apply one event; a repeat answers 'duplicate' and changes nothing."""
    events = WebhookEventRepository(session)
    if not await events.record(
        provider=provider.value, event_id=event_id, event_type=event_type, tenant_id=None, payload=payload
    ):
        return "duplicate"
    located = _located_tenant.set(None)
    try:
        if provider is ProviderName.STRIPE:
            outcome = await _apply_stripe(
                session, event_type, (payload.get("data") or {}).get("object") or {}
            )
        else:
            outcome = await _apply_razorpay(session, event_type, payload.get("payload") or {})
        # The event is filed under the tenant it turned out to concern (none for an unknown event).
        await events.set_outcome(provider.value, event_id, outcome, tenant_id=_located_tenant.get())
    finally:
        _located_tenant.reset(located)
    log.info(
        "webhook applied", extra={"provider": provider.value, "event_type": event_type, "outcome": outcome}
    )
    return outcome


async def _locate(
    session: AsyncSession,
    provider: ProviderName,
    *,
    topup_id: str | None = None,
    checkout_id: str | None = None,
    payment_id: str | None = None,
) -> tuple[str, str] | None:
    found = await TopupRepository(session).locate(
        provider, topup_id=topup_id, checkout_id=checkout_id, payment_id=payment_id
    )
    if found is not None:
        _located_tenant.set(found[0])
    return found


# --- Stripe ----------------------------------------------------------------------------------------


async def _apply_stripe(session: AsyncSession, event_type: str, obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    if event_type.startswith("checkout.session."):
        located = await _locate(
            session,
            ProviderName.STRIPE,
            topup_id=obj.get("client_reference_id") or metadata.get("topup_id"),
            checkout_id=obj.get("id"),
        )
        if located is None:
            return "unknown top-up"
        status = session_status(obj)
        if event_type == "checkout.session.async_payment_failed":
            status = PaymentStatus(PaymentState.FAILED, None, status.payment_id, "the payment failed")
        elif event_type == "checkout.session.expired":
            status = PaymentStatus(
                PaymentState.FAILED, None, status.payment_id, "the checkout session expired"
            )
        elif event_type not in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            return "ignored"
        topup = await settle_status(session, *located, status, source=f"stripe:{event_type}")
        return f"top-up {topup.status.value}"
    if event_type in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        located = await _locate(
            session, ProviderName.STRIPE, topup_id=metadata.get("topup_id"), payment_id=obj.get("id")
        )
        if located is None:
            return "unknown top-up"
        if event_type == "payment_intent.succeeded":
            status = intent_status(obj)
        else:
            error = obj.get("last_payment_error") or {}
            status = PaymentStatus(
                PaymentState.FAILED, None, obj.get("id"), error.get("message") or "declined"
            )
        topup = await settle_status(session, *located, status, source=f"stripe:{event_type}")
        return f"top-up {topup.status.value}"
    if event_type == "charge.refunded":
        return await _stripe_charge_refunded(session, obj)
    if event_type in ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"):
        return await _stripe_refund(session, obj)
    return "ignored"


_STRIPE_REFUND_STATES = {
    "succeeded": RefundState.SUCCEEDED,
    "pending": RefundState.PENDING,
    "requires_action": RefundState.PENDING,
    "failed": RefundState.FAILED,
    "canceled": RefundState.FAILED,
}


async def _stripe_refund(session: AsyncSession, refund: dict[str, Any]) -> str:
    metadata = refund.get("metadata") or {}
    located = await _locate(
        session,
        ProviderName.STRIPE,
        topup_id=metadata.get("topup_id"),
        payment_id=_id(refund.get("payment_intent")),
    )
    if located is None:
        return "unknown top-up"
    topup = await TopupRepository(session).get(*located, for_update=True)
    amount = money_of(refund.get("amount"), refund.get("currency")) or topup.amount
    if not metadata.get("walletsvc_refund_id"):
        await _claim_charge_refund(session, topup, str(refund.get("id")), amount)
    settled = await settle_provider_refund(
        session,
        topup,
        provider_refund_id=str(refund.get("id")),
        our_refund_id=metadata.get("walletsvc_refund_id"),
        amount=amount,
        state=_STRIPE_REFUND_STATES.get(str(refund.get("status")), RefundState.PENDING),
        source="stripe:refund",
    )
    return f"refund {settled.status if settled else 'ignored'}"


async def _claim_charge_refund(
    session: AsyncSession, topup: Topup, provider_refund_id: str, amount: Money
) -> None:
    """A refund made outside walletsvc that `charge.refunded` already recorded, under a stand-in id (the
    charge names no refund), is the same refund its own `refund.*` event speaks of: give the record the
    real id, so that the refund is not recorded and debited a second time."""
    refunds = RefundRepository(session)
    if await refunds.find(topup.tenant_id, refund_id=None, provider_refund_id=provider_refund_id):
        return
    for recorded in await refunds.for_topup(topup.tenant_id, topup.id):
        if ":refunded:" in (recorded.provider_refund_id or "") and recorded.amount == amount:
            await refunds.update(topup.tenant_id, recorded.id, provider_refund_id=provider_refund_id)
            return


async def _stripe_charge_refunded(session: AsyncSession, charge: dict[str, Any]) -> str:
    """`charge.refunded` carries the charge. Its `refunds` list is present in older API versions; when
    it is, each refund is settled on its own. Otherwise the cumulative `amount_refunded` is compared
    with what walletsvc has debited, and any difference is settled."""
    payment_id = _id(charge.get("payment_intent"))
    located = await _locate(
        session,
        ProviderName.STRIPE,
        topup_id=(charge.get("metadata") or {}).get("topup_id"),
        payment_id=payment_id,
    )
    if located is None:
        return "unknown top-up"
    listed = ((charge.get("refunds") or {}).get("data")) or []
    if listed:
        outcomes = [await _stripe_refund(session, {**r, "payment_intent": payment_id}) for r in listed]
        return "; ".join(outcomes)
    topups = TopupRepository(session)
    topup = await topups.get(*located, for_update=True)
    refunded = money_of(charge.get("amount_refunded"), charge.get("currency"))
    if refunded is None:
        return "ignored"
    missing = refunded.amount - topup.refunded.amount
    if missing <= 0:
        return "already settled"
    # Our own refunds whose API answer never reached us (a timeout) come first: they are what Stripe
    # refunded, and must not be debited again as an outside refund.
    for refund in await RefundRepository(session).for_topup(topup.tenant_id, topup.id):
        if refund.status == "pending" and not refund.debited and refund.amount.amount <= missing:
            await debit_refund(session, topup, refund, source="stripe:charge.refunded")
            await RefundRepository(session).update(topup.tenant_id, refund.id, status="succeeded")
            missing -= refund.amount.amount
    if missing <= 0:
        return "refund succeeded"
    settled = await settle_provider_refund(
        session,
        topup,
        provider_refund_id=f"{charge.get('id')}:refunded:{refunded.amount}",
        our_refund_id=None,
        amount=Money(missing, refunded.currency),
        state=RefundState.SUCCEEDED,
        source="stripe:charge.refunded",
    )
    return f"refund {settled.status if settled else 'ignored'}"


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("id")) if value.get("id") else None
    return str(value) if value else None


# --- Razorpay ---------------------------------------------------------------------------------------

_RAZORPAY_REFUND_STATES = {
    "processed": RefundState.SUCCEEDED,
    "created": RefundState.PENDING,
    "failed": RefundState.FAILED,
}


async def _apply_razorpay(session: AsyncSession, event_type: str, body: dict[str, Any]) -> str:
    payment = (body.get("payment") or {}).get("entity") or {}
    order = (body.get("order") or {}).get("entity") or {}
    if event_type in ("payment.captured", "order.paid", "payment.failed"):
        notes = payment.get("notes") or order.get("notes") or {}
        if isinstance(notes, list):  # Razorpay sends an empty list for no notes
            notes = {}
        located = await _locate(
            session,
            ProviderName.RAZORPAY,
            topup_id=notes.get("topup_id"),
            checkout_id=payment.get("order_id") or order.get("id"),
            payment_id=payment.get("id"),
        )
        if located is None:
            return "unknown top-up"
        if event_type == "payment.failed":
            topup = await fail_topup(
                session,
                *located,
                reason=payment.get("error_description") or "the payment failed",
                source=f"razorpay:{event_type}",
                payment_id=payment.get("id"),
            )
        elif payment.get("status") == "captured":
            status = PaymentStatus(PaymentState.PAID, payment_money(payment), payment.get("id"))
            topup = await settle_status(session, *located, status, source=f"razorpay:{event_type}")
        else:
            return "payment not captured"
        return f"top-up {topup.status.value}"
    if event_type in ("refund.processed", "refund.failed", "refund.created"):
        refund = (body.get("refund") or {}).get("entity") or {}
        notes = refund.get("notes") or {}
        if isinstance(notes, list):
            notes = {}
        payment_notes = payment.get("notes") or {}
        if isinstance(payment_notes, list):
            payment_notes = {}
        # A refund made in the dashboard has no notes of ours, and its payment may not be known here yet
        # (its capture not heard of): the payment entity sent along names the order.
        located = await _locate(
            session,
            ProviderName.RAZORPAY,
            topup_id=notes.get("topup_id") or payment_notes.get("topup_id"),
            checkout_id=payment.get("order_id"),
            payment_id=refund.get("payment_id"),
        )
        if located is None:
            return "unknown top-up"
        topup = await TopupRepository(session).get(*located, for_update=True)
        state = {"refund.processed": RefundState.SUCCEEDED, "refund.failed": RefundState.FAILED}.get(
            event_type, _RAZORPAY_REFUND_STATES.get(str(refund.get("status")), RefundState.PENDING)
        )
        settled = await settle_provider_refund(
            session,
            topup,
            provider_refund_id=str(refund.get("id")),
            our_refund_id=notes.get("walletsvc_refund_id"),
            amount=Money(int(refund["amount"]), str(refund.get("currency") or topup.amount.currency).upper()),
            state=state,
            source=f"razorpay:{event_type}",
        )
        return f"refund {settled.status if settled else 'ignored'}"
    return "ignored"
