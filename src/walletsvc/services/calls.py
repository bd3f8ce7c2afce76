"""Call authorization: before dialling, check the minimum balance and the limits, place a hold, and say
how long the call may run. Holds that are never settled expire and give their money back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.usage import UsageRepository
from walletsvc.domain.money import Money
from walletsvc.domain.plans import Authorization, authorize_call
from walletsvc.domain.rating import UsageKind
from walletsvc.services.low_balance import Cause, CauseType, note_locked_wallet
from walletsvc.services.pricing import PricingDefaults, pricing_for

log = logging.getLogger(__name__)


class CallLimits(PricingDefaults, Protocol):
    """What authorizing a call reads from the settings: the pricing defaults, MAX_CALL_SECONDS,
    DEFAULT_HOLD_SECONDS and HOLD_TTL_SECONDS (Settings has them all)."""

    @property
    def max_call_seconds(self) -> int: ...

    @property
    def default_hold_seconds(self) -> int: ...

    @property
    def hold_ttl_seconds(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CallAuthorization:
    call_id: str
    tenant_id: str
    decision: Authorization
    expires_at: datetime | None
    existing: bool  # the call was authorized before: this is that first answer
    available_after: int


def _from_hold(hold: dict[str, Any], available: int) -> CallAuthorization:
    return CallAuthorization(
        call_id=hold["call_id"],
        tenant_id=hold["tenant_id"],
        decision=Authorization(True, hold["max_seconds"], Money(hold["amount"], hold["currency"])),
        expires_at=hold["expires_at"],
        existing=True,
        available_after=available,
    )


async def authorize(
    session: AsyncSession,
    limits: CallLimits,
    *,
    tenant_id: str,
    call_id: str,
    requested_max_seconds: int | None,
    actor: str,
) -> CallAuthorization:
    repo = UsageRepository(session)
    # The wallet row is locked for these few statements: concurrent authorizations of one tenant queue
    # here, so six holds of 1,000 on a 5,000 balance can never all be granted.
    wallet = await repo.lock_wallet(tenant_id)
    existing = await repo.hold(tenant_id, call_id)
    if existing is not None and existing["status"] == "active":
        return _from_hold(existing, wallet.available)
    # A call whose hangup was charged already (with no hold, or its hold closed) is over: a hold placed
    # now would never be settled and would keep the money reserved until it expires.
    used = existing is not None or bool(await repo.existing(tenant_id, [(UsageKind.CALL.value, call_id)]))
    wallet.reserved -= await repo.expire_holds(tenant_id)
    pricing = await pricing_for(session, limits, tenant_id, wallet.currency)
    today = datetime.now(UTC).date()
    spent_today = wallet.spent_today if wallet.spent_day == today else 0
    decision = authorize_call(
        available=wallet.available,
        rates=pricing.rates,
        quota_remaining_seconds=pricing.quota_remaining_seconds,
        minimum_balance=pricing.minimum_balance,
        requested_max_seconds=requested_max_seconds,
        cap_seconds=limits.max_call_seconds,
        default_hold_seconds=limits.default_hold_seconds,
        active_calls=await repo.active_hold_count(tenant_id),
        max_concurrent_calls=wallet.max_concurrent_calls,
        spent_today=spent_today,
        daily_spend_cap=wallet.daily_spend_cap,
    )
    expires_at = None
    if decision.allowed and not used:
        hold = await repo.add_hold(
            tenant_id=tenant_id,
            call_id=call_id,
            amount=decision.hold,
            max_seconds=decision.max_seconds,
            ttl_seconds=limits.hold_ttl_seconds,
            created_by=actor,
        )
        wallet.reserved += decision.hold.amount
        expires_at = hold["expires_at"]
    elif decision.allowed:
        # The call was authorized before and its hold is closed (settled or expired), or its hangup
        # was charged: it may not start again under the same id.
        decision = Authorization(
            False, 0, Money(0, wallet.currency), "this call id was already used", "CALL_ID_USED"
        )
    await repo.save_wallet(wallet)
    # A hold lowers the available balance (expired holds released here raise it): the alert rule runs on it.
    await note_locked_wallet(session, wallet, Cause(CauseType.HOLD, call_id))
    return CallAuthorization(
        call_id=call_id,
        tenant_id=tenant_id,
        decision=decision,
        expires_at=expires_at,
        existing=False,
        available_after=wallet.available,
    )


async def expire_holds(db: Database) -> int:
    """Give back the money of holds past their expiry, tenant by tenant; answer how many tenants."""
    async with db.sessionmaker() as session:
        tenants = await UsageRepository(session).tenants_with_expired_holds()
    for tenant_id in tenants:
        async with unit_of_work(db) as session:
            repo = UsageRepository(session)
            wallet = await repo.lock_wallet(tenant_id)
            wallet.reserved -= await repo.expire_holds(tenant_id)
            await repo.save_wallet(wallet)
            await note_locked_wallet(session, wallet, Cause(CauseType.HOLDS_EXPIRED))
    if tenants:
        log.info("expired holds released", extra={"tenants": len(tenants)})
    return len(tenants)
