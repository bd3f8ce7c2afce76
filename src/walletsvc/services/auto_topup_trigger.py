"""The auto top-up trigger: what every change that lowers the available balance calls, in its transaction.

It decides from the locked wallet first (active, below the threshold, not paused by a back-off, a cap or
one in flight) and costs a statement only then: one INSERT ... SELECT that re-checks all of it, starts an
attempt unless one is in flight (the partial unique index `auto_topups_one_in_flight`, not only this code)
and queues the worker's `run_auto_topup` job in the same transaction. Nothing here imports the top-up
service, so the money paths (and services/low_balance.py, which they all report to) can import it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.auto_topups import start_if_due, start_if_due_raw
from walletsvc.domain.auto_topup import should_trigger
from walletsvc.domain.charging import LockedWallet


async def consider_auto_topup(
    session: AsyncSession,
    tenant_id: str,
    *,
    cause: str,
    available: int | None = None,
    threshold: int | None = None,
    active: bool | None = None,
    paused_until: datetime | None = None,
) -> str | None:
    """After a change that lowered the available balance, in its transaction. Given the locked wallet's
    state (`available`, `threshold`, `active`, `paused_until`) it decides without a statement when nothing
    is due; the statement itself re-checks all of it. Answers the new attempt's id, or None."""
    if active is not None and not _due(active, available or 0, threshold, paused_until, datetime.now(UTC)):
        return None
    return await start_if_due(session, tenant_id, cause)


async def consider_auto_topup_raw(
    conn: asyncpg.Connection, wallet: LockedWallet, *, cause: str, now: datetime
) -> str | None:
    """The charge writer's twin, on its asyncpg connection, for the wallet as its round left it: no
    round trip unless below the threshold and not paused (back-off, cap, or one in flight)."""
    if not auto_topup_due(wallet, now):
        return None
    return await start_if_due_raw(conn, wallet.tenant_id, cause)


def auto_topup_due(wallet: LockedWallet, now: datetime) -> bool:
    """Whether a charge that left `wallet` so must start an auto top-up (consider_auto_topup_raw would
    write one)."""
    return _due(
        wallet.auto_topup_enabled,
        wallet.available,
        wallet.auto_topup_threshold,
        wallet.auto_topup_paused_until,
        now,
    )


def _due(
    active: bool, available: int, threshold: int | None, paused_until: datetime | None, now: datetime
) -> bool:
    if not should_trigger(active, available=available, threshold=threshold):
        return False
    if paused_until is None:
        return True
    # 'infinity' (one in flight) comes back from the drivers as a naive datetime.max.
    return paused_until.tzinfo is not None and paused_until <= now


def cause_text(kind: str, ident: str | None) -> str:
    """How an attempt names what started it: `charge:123`, `hold:call-1`, `adjustment:adj_...`."""
    return f"{kind}:{ident}" if ident else kind
