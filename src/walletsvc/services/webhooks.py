"""Provider webhooks: stored once on (provider, event id), then applied. Order is never assumed: every
handler reads the current state and moves it only forward (a late failure never undoes a success).

Malformed events. The router answers 422 VALIDATION_FAILED only when the envelope itself is unusable:
the body is not a JSON object, Stripe's `id`/`type` or Razorpay's `event` is not a non-empty string, or
it is nested more than 64 levels deep. Everything inside the envelope is read here through typed
accessors (providers/base.py). An event with a wrong type wherever it is read (`data` a string,
`metadata` a list, an id that is a number, a refund amount that is not a positive integer, ...), or with
a character PostgreSQL cannot store (NUL: stored escaped, see db/repositories/webhook_events.py), is
stored as received, answered 200 with the outcome `malformed: <why>`, and moves no money. The one
exception is a payment the provider calls paid with an amount that is missing or not an integer of
minor units: its top-up is flagged for review (`malformed: <why>; top-up flagged`), nothing credited.
A repeat of any of them answers `duplicate`."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.refunds import RefundRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.db.repositories.webhook_events import WebhookEventRepository, is_storable
from walletsvc.domain.auto_topup import AutoTopupPolicy
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import Topup
from walletsvc.providers.base import (
    MalformedPayload,
    PaymentState,
    PaymentStatus,
    RefundState,
    id_at,
    obj_at,
    objects_at,
    required_str,
    str_at,
)
from walletsvc.providers.razorpay_gateway import notes_of, payment_status_of, refund_money
from walletsvc.providers.razorpay_links import link_status_of, link_topup_id
from walletsvc.providers.stripe_gateway import intent_status, money_of, session_status
from walletsvc.services import auto_topup_outcomes, payment_methods, razorpay_mandates
from walletsvc.services.payment_methods import PAYMENT_METHOD_EVENTS
from walletsvc.services.refunds import debit_refund, settle_provider_refund
from walletsvc.services.topups import fail_topup, settle_status

log = logging.getLogger(__name__)

_located_tenant: ContextVar[str | None] = ContextVar("webhook_tenant", default=None)


async def receive_event(
    session: AsyncSession,
    provider: ProviderName,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    policy: AutoTopupPolicy,
) -> str:
    """Store and apply one event; a repeat answers 'duplicate' and changes nothing. `policy`: what a
    decline of an auto top-up does (back-off, switch-off after N)."""
    events = WebhookEventRepository(session)
    if not await events.record(
        provider=provider.value, event_id=event_id, event_type=event_type, tenant_id=None, payload=payload
    ):
        return "duplicate"
    located = _located_tenant.set(None)
    try:
        if not (is_storable(event_id) and is_storable(event_type) and is_storable(payload)):
            outcome = "malformed: the event holds NUL characters or unpaired surrogates (stored escaped)"
        else:
            outcome = await _apply(session, provider, event_type, payload, policy)
        # The event is filed under the tenant it turned out to concern (none for an unknown event).
        await events.set_outcome(provider.value, event_id, outcome, tenant_id=_located_tenant.get())
    finally:
        _located_tenant.reset(located)
    log.info(
        "webhook applied", extra={"provider": provider.value, "event_type": event_type, "outcome": outcome}
    )
    return outcome


async def _apply(
    session: AsyncSession,
    provider: ProviderName,
    event_type: str,
    payload: dict[str, Any],
    policy: AutoTopupPolicy,
) -> str:
    """Apply the event inside a savepoint: a field found malformed halfway (the second refund of a
    charge, say) undoes whatever the first half did, and only the stored event remains."""
    try:
        async with session.begin_nested():
            if provider is ProviderName.STRIPE:
                obj = obj_at(obj_at(payload, "data"), "object")
                return await _apply_stripe(session, event_type, obj, policy)
            return await _apply_razorpay(session, event_type, obj_at(payload, "payload"), policy)
    except MalformedPayload as exc:
        log.warning("malformed webhook event", extra={"provider": provider.value, "event_type": event_type})
        return f"malformed: {exc.detail}"


async def _settled(
    session: AsyncSession,
    located: tuple[str, str],
    status: PaymentStatus,
    *,
    source: str,
    policy: AutoTopupPolicy,
) -> str:
    topup = await settle_status(session, *located, status, source=source, policy=policy)
    if status.state is PaymentState.PAID and status.amount is None:
        return f"malformed: {status.reason}; top-up {topup.status.value}"
    return f"top-up {topup.status.value}"


def _same_currency(amount: Money, topup: Topup) -> Money:
    if amount.currency != topup.amount.currency:
        raise MalformedPayload(f"the refund is in {amount.currency}, the top-up in {topup.amount.currency}")
    return amount


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


async def _apply_stripe(
    session: AsyncSession, event_type: str, obj: dict[str, Any], policy: AutoTopupPolicy
) -> str:
    metadata = obj_at(obj, "metadata")
    if event_type in PAYMENT_METHOD_EVENTS:
        outcome, tenant_id = await payment_methods.apply_stripe_event(session, event_type, obj)
        if tenant_id is not None:
            _located_tenant.set(tenant_id)
        return outcome
    if event_type.startswith("checkout.session."):
        located = await _locate(
            session,
            ProviderName.STRIPE,
            topup_id=str_at(obj, "client_reference_id") or str_at(metadata, "topup_id"),
            checkout_id=str_at(obj, "id"),
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
        return await _settled(session, located, status, source=f"stripe:{event_type}", policy=policy)
    if event_type in (
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
    ):
        intent_id = str_at(obj, "id")
        located = await _locate(
            session, ProviderName.STRIPE, topup_id=str_at(metadata, "topup_id"), payment_id=intent_id
        )
        if located is None:
            return "unknown top-up"
        if event_type != "payment_intent.succeeded" and await auto_topup_outcomes.intent_waits(
            session, located, obj
        ):
            return "auto top-up requires_action"  # 3-D Secure: waits for the customer, not a decline
        if event_type == "payment_intent.requires_action":
            return "ignored"
        if event_type == "payment_intent.succeeded":
            status = intent_status(obj)
        else:
            message = str_at(obj_at(obj, "last_payment_error"), "message")
            status = PaymentStatus(PaymentState.FAILED, None, intent_id, message or "declined")
        return await _settled(session, located, status, source=f"stripe:{event_type}", policy=policy)
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
    metadata = obj_at(refund, "metadata")
    refund_id = required_str(refund, "id")
    our_refund_id = str_at(metadata, "walletsvc_refund_id")
    state = _STRIPE_REFUND_STATES.get(str_at(refund, "status") or "", RefundState.PENDING)
    located = await _locate(
        session,
        ProviderName.STRIPE,
        topup_id=str_at(metadata, "topup_id"),
        payment_id=id_at(refund, "payment_intent"),
    )
    if located is None:
        return "unknown top-up"
    # Read before anything is locked or settled: a refund of no readable amount never reaches settlement.
    amount = money_of(refund.get("amount"), refund.get("currency"), positive=True)
    topup = await TopupRepository(session).get(*located, for_update=True)
    amount = _same_currency(amount, topup)
    if not our_refund_id:
        await _claim_charge_refund(session, topup, refund_id, amount)
    settled = await settle_provider_refund(
        session,
        topup,
        provider_refund_id=refund_id,
        our_refund_id=our_refund_id,
        amount=amount,
        state=state,
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
    payment_id = id_at(charge, "payment_intent")
    charge_id = required_str(charge, "id")
    located = await _locate(
        session,
        ProviderName.STRIPE,
        topup_id=str_at(obj_at(charge, "metadata"), "topup_id"),
        payment_id=payment_id,
    )
    if located is None:
        return "unknown top-up"
    listed = objects_at(obj_at(charge, "refunds"), "data")
    if listed:
        outcomes = [await _stripe_refund(session, {**r, "payment_intent": payment_id}) for r in listed]
        return "; ".join(outcomes)
    refunded = money_of(charge.get("amount_refunded"), charge.get("currency"), name="amount_refunded")
    topups = TopupRepository(session)
    topup = await topups.get(*located, for_update=True)
    refunded = _same_currency(refunded, topup)
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
        provider_refund_id=f"{charge_id}:refunded:{refunded.amount}",
        our_refund_id=None,
        amount=Money(missing, refunded.currency),
        state=RefundState.SUCCEEDED,
        source="stripe:charge.refunded",
    )
    return f"refund {settled.status if settled else 'ignored'}"


# --- Razorpay ---------------------------------------------------------------------------------------


async def _razorpay_payment_link(
    session: AsyncSession, event_type: str, body: dict[str, Any], policy: AutoTopupPolicy
) -> str:
    """An auto top-up's payment link (INR without a mandate): paid credits once, expired or cancelled
    ends the auto top-up."""
    topup_id, link_id, link, payment = link_topup_id(body)
    located = await _locate(session, ProviderName.RAZORPAY, topup_id=topup_id, checkout_id=link_id)
    if located is None:
        return "unknown top-up"
    if event_type == "payment_link.paid":
        return await _settled(
            session,
            located,
            link_status_of(link, payment),
            source=f"razorpay:{event_type}",
            policy=policy,
        )
    if event_type in ("payment_link.expired", "payment_link.cancelled"):
        topup = await fail_topup(
            session,
            *located,
            reason=f"the payment link {event_type.rsplit('.', 1)[1]}",
            source=f"razorpay:{event_type}",
            policy=policy,
            code="payment_link_expired",
        )
        return f"top-up {topup.status.value}"
    return "ignored"


_RAZORPAY_REFUND_STATES = {
    "processed": RefundState.SUCCEEDED,
    "created": RefundState.PENDING,
    "failed": RefundState.FAILED,
}


def _entity(body: dict[str, Any], name: str) -> dict[str, Any]:
    return obj_at(obj_at(body, name), "entity")


async def _apply_razorpay(
    session: AsyncSession, event_type: str, body: dict[str, Any], policy: AutoTopupPolicy
) -> str:
    if event_type.startswith("payment_link."):
        return await _razorpay_payment_link(session, event_type, body, policy)
    if event_type.startswith("token."):  # a recurring mandate (services/razorpay_mandates.py)
        outcome, tenant_id = await razorpay_mandates.apply_token_event(session, event_type, body)
        if tenant_id is not None:
            _located_tenant.set(tenant_id)
        return outcome
    payment = _entity(body, "payment")
    order = _entity(body, "order")
    if event_type in ("payment.captured", "order.paid", "payment.failed"):
        # A mandate's authorization payment names its token; its money is its top-up's, settled below.
        await razorpay_mandates.note_authorization_payment(session, payment)
        notes = notes_of(payment) or notes_of(order)
        payment_id = str_at(payment, "id")
        located = await _locate(
            session,
            ProviderName.RAZORPAY,
            topup_id=str_at(notes, "topup_id"),
            checkout_id=str_at(payment, "order_id") or str_at(order, "id"),
            payment_id=payment_id,
        )
        if located is None:
            return "unknown top-up"
        if event_type == "payment.failed":
            topup = await fail_topup(
                session,
                *located,
                reason=str_at(payment, "error_description") or "the payment failed",
                source=f"razorpay:{event_type}",
                policy=policy,
                payment_id=payment_id,
            )
            return f"top-up {topup.status.value}"
        status = payment_status_of(payment)
        if status.state is not PaymentState.PAID:
            return "payment not captured"
        return await _settled(session, located, status, source=f"razorpay:{event_type}", policy=policy)
    if event_type in ("refund.processed", "refund.failed", "refund.created"):
        refund = _entity(body, "refund")
        notes = notes_of(refund)
        refund_id = required_str(refund, "id")
        state = {"refund.processed": RefundState.SUCCEEDED, "refund.failed": RefundState.FAILED}.get(
            event_type, _RAZORPAY_REFUND_STATES.get(str_at(refund, "status") or "", RefundState.PENDING)
        )
        # A refund made in the dashboard has no notes of ours, and its payment may not be known here yet
        # (its capture not heard of): the payment entity sent along names the order.
        located = await _locate(
            session,
            ProviderName.RAZORPAY,
            topup_id=str_at(notes, "topup_id") or str_at(notes_of(payment), "topup_id"),
            checkout_id=str_at(payment, "order_id"),
            payment_id=str_at(refund, "payment_id"),
        )
        if located is None:
            return "unknown top-up"
        topup = await TopupRepository(session).get(*located, for_update=True)
        # A refund of no readable amount never reaches settlement.
        amount = _same_currency(refund_money(refund, currency=topup.amount.currency), topup)
        settled = await settle_provider_refund(
            session,
            topup,
            provider_refund_id=refund_id,
            our_refund_id=str_at(notes, "walletsvc_refund_id"),
            amount=amount,
            state=state,
            source=f"razorpay:{event_type}",
        )
        return f"refund {settled.status if settled else 'ignored'}"
    return "ignored"
