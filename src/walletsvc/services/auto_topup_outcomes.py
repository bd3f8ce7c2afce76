"""How an auto top-up ends, whichever path tells: the runner's own answer from Stripe, a webhook, or
reconcile. Called by the one credit function (services/topups.py) under the top-up's row lock, so each
ending is recorded once: succeeded, declined (back-off, or switched off after N in a row), or waiting for
the customer (3-D Secure). The decline path's limits come in as an AutoTopupPolicy from the caller, who
built it from the settings: nothing here is configured at import or start."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.auto_topups import AutoTopupRepository
from walletsvc.domain.auto_topup import (
    AutoTopup,
    AutoTopupPolicy,
    AutoTopupStatus,
    DisabledReason,
    after_failure,
)
from walletsvc.domain.events import EventType, money
from walletsvc.domain.money import Money
from walletsvc.services.events import record_event

log = logging.getLogger(__name__)


def attempt_payload(attempt: AutoTopup, **extra: Any) -> dict[str, Any]:
    return {
        "auto_topup_id": attempt.id,
        "topup_id": attempt.topup_id,
        "amount": money(attempt.amount, attempt.currency) if attempt.amount is not None else None,
        **extra,
    }


async def topup_credited(session: AsyncSession, tenant_id: str, topup_id: str, *, credited: Money) -> None:
    """The top-up behind an auto top-up was credited (once: the caller holds the top-up's lock)."""
    attempts = AutoTopupRepository(session)
    attempt = await attempts.by_topup(tenant_id, topup_id, for_update=True)
    if attempt is None or attempt.status is AutoTopupStatus.SUCCEEDED:
        return
    done = await attempts.update(
        tenant_id,
        attempt.id,
        status=AutoTopupStatus.SUCCEEDED,
        amount=credited.amount,
        failure_reason=None,
        failure_code=None,
        settled_at=datetime.now(UTC),
    )
    await attempts.set_state(tenant_id, consecutive_failures=0)
    if (await attempts.in_flight(tenant_id)) is None:
        await attempts.pause(tenant_id, None)
    await record_event(session, EventType.AUTO_TOPUP_SUCCEEDED, tenant_id, attempt_payload(done))


async def topup_declined(
    session: AsyncSession,
    tenant_id: str,
    topup_id: str,
    *,
    reason: str,
    policy: AutoTopupPolicy,
    code: str | None = None,
    now: datetime | None = None,
) -> None:
    """The top-up behind an auto top-up failed: back off, or after N declines in a row switch off."""
    attempts = AutoTopupRepository(session)
    attempt = await attempts.by_topup(tenant_id, topup_id, for_update=True)
    if attempt is None or not attempt.in_flight:
        return  # not an auto top-up's, or ended already: a late failure changes nothing
    # In flight, `requires_action` included: the customer tried to confirm and the card was declined, or the
    # payment link expired. (Stripe's authentication_required is not a failure: webhooks.py and the runner
    # route it to topup_requires_action before any failure is applied.)
    await record_failure(session, attempt, reason=reason, code=code, policy=policy, now=now)


async def record_failure(
    session: AsyncSession,
    attempt: AutoTopup,
    *,
    reason: str,
    code: str | None,
    policy: AutoTopupPolicy,
    now: datetime | None = None,
) -> AutoTopup:
    now = now or datetime.now(UTC)
    attempts = AutoTopupRepository(session)
    tenant_id = attempt.tenant_id
    config = await attempts.config(tenant_id, for_update=True)
    decision = after_failure(config.consecutive_failures, policy=policy, now=now)
    failed = await attempts.update(
        tenant_id,
        attempt.id,
        status=AutoTopupStatus.FAILED,
        failure_reason=reason[:500],
        failure_code=(code or "declined")[:100],
        settled_at=now,
    )
    await attempts.set_state(tenant_id, consecutive_failures=decision.failures)
    await record_event(
        session,
        EventType.AUTO_TOPUP_FAILED,
        tenant_id,
        attempt_payload(
            failed,
            reason=failed.failure_reason,
            code=failed.failure_code,
            consecutive_failures=decision.failures,
            retry_after=decision.retry_after.isoformat() if decision.retry_after else None,
        ),
    )
    if decision.disable:
        await attempts.disable(tenant_id, DisabledReason.FAILURES.value)
        await record_event(
            session,
            EventType.AUTO_TOPUP_DISABLED,
            tenant_id,
            {
                "reason": DisabledReason.FAILURES.value,
                "consecutive_failures": decision.failures,
                "last_failure": failed.failure_reason,
                "auto_topup_id": failed.id,
            },
        )
        log.warning("auto top-up switched off after declines", extra={"tenant_id": tenant_id})
    else:
        await attempts.pause(tenant_id, decision.retry_after)
    return failed


async def topup_requires_action(
    session: AsyncSession,
    tenant_id: str,
    topup_id: str,
    *,
    payment_intent_id: str | None,
    reason: str | None,
    action_url: str | None = None,
) -> bool:
    """The card issuer wants the customer to authenticate: no retry, the attempt waits (and stays in
    flight, so no other starts) until the customer confirms it. Answers whether this changed anything."""
    attempts = AutoTopupRepository(session)
    attempt = await attempts.by_topup(tenant_id, topup_id, for_update=True)
    if attempt is None or attempt.status not in (AutoTopupStatus.CREATED, AutoTopupStatus.PROCESSING):
        return False
    waiting = await attempts.update(
        tenant_id,
        attempt.id,
        status=AutoTopupStatus.REQUIRES_ACTION,
        provider_payment_id=payment_intent_id or attempt.provider_payment_id,
        action_url=action_url or attempt.action_url,
        failure_reason=(reason or "the customer must authenticate the payment")[:500],
        failure_code="authentication_required",
    )
    await record_event(
        session,
        EventType.AUTO_TOPUP_REQUIRES_ACTION,
        tenant_id,
        attempt_payload(waiting, action_url=waiting.action_url, reason=waiting.failure_reason),
    )
    return True


async def intent_waits(session: AsyncSession, located: tuple[str, str], intent: dict[str, Any]) -> bool:
    """A webhook's PaymentIntent of an auto top-up that wants 3-D Secure (`requires_action`, or failed
    off-session with `authentication_required`): the attempt waits for the customer. False for any other
    top-up or outcome, which the caller then applies as usual."""
    from walletsvc.providers.stripe_saved_methods import ChargeState, charge_of

    charge = charge_of(intent)
    if charge.state is not ChargeState.REQUIRES_ACTION:
        return False
    tenant_id, topup_id = located
    if await AutoTopupRepository(session).by_topup(tenant_id, topup_id) is None:
        return False
    await topup_requires_action(
        session,
        tenant_id,
        topup_id,
        payment_intent_id=charge.payment_intent_id,
        reason=charge.reason,
        action_url=charge.action_url,
    )
    return True
