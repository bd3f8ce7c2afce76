"""INR auto top-up without a mandate: a Razorpay Payment Link to the tenant's billing contacts.

Like a card's auto top-up it is an intent: the top-up behind it is written and committed first, the link
is created with no transaction open (its `reference_id` is the top-up's id, so a resumed job finds the
first link rather than sending a second), and the link's answer is recorded in the next transaction. The
auto top-up then waits (in flight, `requires_action`) until `payment_link.paid` (or reconcile) credits it
once through the one credit function, or the link expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.auto_topups import AutoTopupRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.domain.auto_topup import AutoTopup, AutoTopupStatus
from walletsvc.domain.events import EventType, money
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind
from walletsvc.providers.razorpay_links import PaymentLink, create_payment_link
from walletsvc.services.billing_contacts import get_billing_contacts
from walletsvc.services.events import record_event
from walletsvc.services.gateways import Gateways


class LinkSettings(Protocol):
    """What a payment link reads from the settings: PORTAL_SUCCESS_URL (where Razorpay sends the customer
    back) and AUTO_TOPUP_PAYMENT_LINK_EXPIRY_SECONDS (Settings has both)."""

    @property
    def portal_success_url(self) -> str: ...

    @property
    def auto_topup_payment_link_expiry_seconds(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LinkPlan:
    attempt: AutoTopup
    topup_id: str
    amount: Money
    email: str | None
    name: str
    callback_url: str | None
    expire_by: int


async def start_processing(
    session: AsyncSession,
    attempt: AutoTopup,
    *,
    topup_id: str,
    amount: Money,
    provider: ProviderName,
    checkout_kind: CheckoutKind,
    detail: str,
    **columns: object,
) -> AutoTopup:
    """Write the top-up behind an attempt (once: a resumed job finds it; credited by the one credit
    function whichever path confirms its payment) and mark the attempt processing on it, with the other
    `columns` the path records (its payment method, its action URL). Committed by the caller before any
    provider call."""
    topups = TopupRepository(session)
    if await topups.find(attempt.tenant_id, topup_id) is None:
        await topups.add(
            topup_id=topup_id,
            tenant_id=attempt.tenant_id,
            provider=provider,
            amount=amount,
            checkout_kind=checkout_kind,
            save_payment_method=False,
            created_by="system:auto_topup",
        )
        await topups.add_event(attempt.tenant_id, topup_id, "created", source="auto_topup", detail=detail)
    return await AutoTopupRepository(session).update(
        attempt.tenant_id,
        attempt.id,
        status=AutoTopupStatus.PROCESSING,
        provider=provider.value,
        amount=amount.amount,
        topup_id=topup_id,
        **columns,
    )


async def prepare_link(
    session: AsyncSession,
    links: LinkSettings,
    attempt: AutoTopup,
    *,
    topup_id: str,
    amount: Money,
    why: str = "no mandate",
) -> LinkPlan:
    """Write the top-up and mark the attempt processing (committed by the caller before any call)."""
    processing = await start_processing(
        session,
        attempt,
        topup_id=topup_id,
        amount=amount,
        provider=ProviderName.RAZORPAY,
        checkout_kind=CheckoutKind.RAZORPAY_MODAL,
        detail=f"payment link ({why}), {attempt.id}",
    )
    return await link_plan(session, links, processing)


async def link_plan(session: AsyncSession, links: LinkSettings, attempt: AutoTopup) -> LinkPlan:
    assert attempt.topup_id is not None
    assert attempt.amount is not None
    tenant = await TenantRepository(session).get(attempt.tenant_id)
    contacts = await get_billing_contacts(session, attempt.tenant_id)
    return LinkPlan(
        attempt=attempt,
        topup_id=attempt.topup_id,
        amount=Money(attempt.amount, attempt.currency),
        email=contacts.emails[0] if contacts.emails else None,
        name=tenant.name,
        callback_url=links.portal_success_url or None,
        expire_by=int(attempt.created_at.timestamp()) + links.auto_topup_payment_link_expiry_seconds,
    )


async def send_link(gateways: Gateways, plan: LinkPlan) -> PaymentLink:
    """Ask Razorpay, no transaction open. ProviderUnavailable: the job runs again and finds the link."""
    return await create_payment_link(
        gateways.razorpay_or_refuse(),
        topup_id=plan.topup_id,
        tenant_id=plan.attempt.tenant_id,
        auto_topup_id=plan.attempt.id,
        amount=plan.amount,
        email=plan.email,
        name=plan.name,
        callback_url=plan.callback_url,
        expire_by=max(plan.expire_by, int(time.time()) + 1800),
    )


async def record_link(session: AsyncSession, plan: LinkPlan, link: PaymentLink) -> AutoTopupStatus:
    """The link exists: the attempt waits for the customer; the billing contacts are told (once)."""
    tenant_id = plan.attempt.tenant_id
    topups = TopupRepository(session)
    await topups.get(tenant_id, plan.topup_id, for_update=True)
    await topups.set_checkout(tenant_id, plan.topup_id, checkout_id=link.link_id, payment_id=None)
    attempts = AutoTopupRepository(session)
    attempt = await attempts.get(tenant_id, plan.attempt.id, for_update=True)
    if attempt.status is not AutoTopupStatus.PROCESSING:
        return attempt.status  # paid (or ended) meanwhile
    waiting = await attempts.update(
        tenant_id,
        attempt.id,
        status=AutoTopupStatus.REQUIRES_ACTION,
        provider_payment_id=link.link_id,
        action_url=link.short_url,
        failure_reason="waiting for the payment link to be paid",
        failure_code="payment_link_sent",
    )
    await topups.add_event(
        tenant_id, plan.topup_id, "payment_link_sent", source="auto_topup", detail=link.link_id
    )
    contacts = await get_billing_contacts(session, tenant_id)
    await record_event(
        session,
        EventType.AUTO_TOPUP_PAYMENT_LINK_SENT,
        tenant_id,
        {
            "auto_topup_id": waiting.id,
            "topup_id": plan.topup_id,
            "amount": money(link.amount.amount, link.amount.currency),
            "url": link.short_url,
            "expires_at": plan.expire_by,
            "recipients": list(contacts.emails),
        },
    )
    return waiting.status
