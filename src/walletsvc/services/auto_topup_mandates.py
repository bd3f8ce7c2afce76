"""INR auto top-up on a Razorpay recurring mandate: the runner's path when the tenant has a usable mandate
whose limit covers the amount.

Like a card's it is an intent: the top-up behind it is written and the attempt marked `processing` (with
the mandate it debits) and committed first. With no transaction open, providers/razorpay_mandates.py
finds or makes the order (receipt: the top-up's id), reads the order's payments and only then asks for
the recurring payment, so a retry or a crash between the call and this record never makes a second one.
The answer is recorded through the top-up: captured credits once through the one credit function (as
`payment.captured` / `order.paid` or reconcile would), failed takes the decline path, pending (UPI's
pre-debit notification) waits in `processing` for the webhook or reconcile. A mandate Razorpay refuses
to debit is marked rejected and the attempt falls back to a payment link, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.auto_topups import AutoTopupRepository
from walletsvc.db.repositories.razorpay_mandates import RazorpayMandateRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.domain.auto_topup import AutoTopup, AutoTopupPolicy, AutoTopupStatus
from walletsvc.domain.mandates import order_receipt
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind, TopupStatus
from walletsvc.providers.base import PaymentState
from walletsvc.providers.razorpay_mandates import MandateDebit, debit_mandate
from walletsvc.services.auto_topup_links import LinkPlan, LinkSettings, link_plan, start_processing
from walletsvc.services.billing_contacts import get_billing_contacts
from walletsvc.services.gateways import Gateways
from walletsvc.services.razorpay_mandates import refuse_mandate, usable_mandate
from walletsvc.services.topups import fail_topup, settle_status


@dataclass(frozen=True, slots=True)
class MandatePlan:
    attempt: AutoTopup
    topup_id: str
    amount: Money
    mandate_id: str
    customer_id: str | None
    token_id: str | None
    email: str | None
    may_debit: bool  # False: the mandate was deleted or ended after the attempt started


async def prepare_mandate(
    session: AsyncSession, attempt: AutoTopup, *, topup_id: str, amount: Money, preferred: str | None
) -> tuple[MandatePlan | None, str]:
    """A usable mandate covering the amount: write the top-up, mark the attempt processing on it. None
    (and why) when the payment link must go instead."""
    mandate, why = await usable_mandate(session, attempt.tenant_id, preferred=preferred, amount=amount.amount)
    if mandate is None or mandate.token_id is None or mandate.customer_id is None:
        return None, why
    processing = await start_processing(
        session,
        attempt,
        topup_id=topup_id,
        amount=amount,
        provider=ProviderName.RAZORPAY,
        checkout_kind=CheckoutKind.RAZORPAY_MODAL,  # an order: reconcile reads its payments
        detail=f"recurring debit on {mandate.id}, {attempt.id}",
        payment_method_id=mandate.id,
    )
    return await _plan(session, processing), why


async def resume_mandate(session: AsyncSession, attempt: AutoTopup) -> MandatePlan | None:
    """A processing attempt on a mandate, run again (a job retried, a worker killed, reconcile): the same
    receipt, so the order and any payment made before are found, never made twice."""
    if attempt.topup_id is None or attempt.payment_method_id is None:
        return None
    topup = await TopupRepository(session).get(attempt.tenant_id, attempt.topup_id)
    if topup.status is not TopupStatus.PENDING:
        return None  # a webhook settled it meanwhile
    return await _plan(session, attempt)


async def _plan(session: AsyncSession, attempt: AutoTopup) -> MandatePlan:
    """The debit's plan whatever became of the mandate since it started: deleted, cancelled or paused,
    the order's payments are still read (and finish the attempt), but no new debit is asked for."""
    assert attempt.topup_id is not None
    assert attempt.amount is not None
    assert attempt.payment_method_id is not None
    mandate = await RazorpayMandateRepository(session).get(attempt.tenant_id, attempt.payment_method_id)
    contacts = await get_billing_contacts(session, attempt.tenant_id)
    return MandatePlan(
        attempt=attempt,
        topup_id=attempt.topup_id,
        amount=Money(attempt.amount, attempt.currency),
        mandate_id=attempt.payment_method_id,
        customer_id=mandate.customer_id if mandate else None,
        token_id=mandate.token_id if mandate else None,
        email=contacts.emails[0] if contacts.emails else None,
        may_debit=mandate is not None and mandate.active,
    )


async def send_debit(gateways: Gateways, plan: MandatePlan) -> MandateDebit:
    """Ask Razorpay, no transaction open. ProviderUnavailable: the job runs again (then reconcile)."""
    return await debit_mandate(
        gateways.razorpay_or_refuse(),
        receipt=order_receipt(plan.topup_id),
        amount=plan.amount,
        customer_id=plan.customer_id or "",
        token_id=plan.token_id or "",
        may_debit=plan.may_debit and plan.customer_id is not None and plan.token_id is not None,
        email=plan.email,
        notes={
            "topup_id": plan.topup_id,
            "tenant_id": plan.attempt.tenant_id,
            "auto_topup_id": plan.attempt.id,
        },
        description=f"Automatic wallet top-up {plan.topup_id}",
    )


async def record_debit(
    session: AsyncSession,
    links: LinkSettings,
    plan: MandatePlan,
    debit: MandateDebit,
    *,
    policy: AutoTopupPolicy,
) -> AutoTopupStatus | LinkPlan:
    """Razorpay's answer, applied through the top-up (whose lock orders it against webhooks and
    reconcile). A refused mandate answers the payment link plan to send instead."""
    tenant_id, topup_id = plan.attempt.tenant_id, plan.topup_id
    topups = TopupRepository(session)
    attempts = AutoTopupRepository(session)
    await topups.get(tenant_id, topup_id, for_update=True)
    if debit.refused:
        await refuse_mandate(session, tenant_id, plan.mandate_id, debit.status.reason or "refused")
        await topups.add_event(
            tenant_id, topup_id, "mandate_refused", source="auto_topup", detail=debit.status.reason or ""
        )
        attempt = await attempts.get(tenant_id, plan.attempt.id, for_update=True)
        if attempt.status is not AutoTopupStatus.PROCESSING:
            return attempt.status
        # The rest of this attempt is the payment link's (a resumed job then finds the link, not the mandate).
        fallback = await attempts.update(tenant_id, attempt.id, payment_method_id=None)
        return await link_plan(session, links, fallback)
    if debit.order_id is not None:
        await topups.set_checkout(
            tenant_id, topup_id, checkout_id=debit.order_id, payment_id=debit.status.payment_id
        )
    if debit.status.payment_id is not None:
        await attempts.update(tenant_id, plan.attempt.id, provider_payment_id=debit.status.payment_id)
    state = debit.status.state
    if state is PaymentState.PAID:
        await settle_status(session, tenant_id, topup_id, debit.status, source="auto_topup", policy=policy)
    elif state is PaymentState.FAILED:
        await fail_topup(
            session,
            tenant_id,
            topup_id,
            reason=debit.status.reason or "the recurring payment failed",
            source="auto_topup",
            policy=policy,
            payment_id=debit.status.payment_id,
            code=debit.code,
        )
    else:  # UPI AutoPay: Razorpay notifies the customer first and debits later; its webhook says how it ended
        await topups.add_event(
            tenant_id, topup_id, "debit_pending", source="auto_topup", detail=debit.status.payment_id or ""
        )
    return (await attempts.get(tenant_id, plan.attempt.id)).status
