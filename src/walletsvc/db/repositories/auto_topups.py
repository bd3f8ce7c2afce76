"""Auto top-up settings, attempts, and the one statement that starts an attempt from a balance change."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.auto_topup import COUNTED, IN_FLIGHT, AutoTopup, AutoTopupConfig, AutoTopupStatus
from walletsvc.domain.errors import NotFound

a = t.auto_topups.c
st = t.auto_topup_settings.c
w = t.wallets.c

RUN_AUTO_TOPUP = "run_auto_topup"
# While one is in flight the wallet says "not now" to the charge writer; the index is the guarantee.
PAUSED_WHILE_IN_FLIGHT = "infinity"


def new_auto_topup_id() -> str:
    return f"at_{secrets.token_hex(12)}"


def config_from_mapping(m: Any) -> AutoTopupConfig:
    return AutoTopupConfig(
        enabled=m["enabled"],
        threshold=m["threshold"],
        amount=m["amount"],
        target_balance=m["target_balance"],
        payment_method_id=m["payment_method_id"],
        max_per_day=m["max_per_day"],
        monthly_cap=m["monthly_cap"],
        locked=m["locked"],
        locked_reason=m["locked_reason"],
        disabled_reason=m["disabled_reason"],
        consecutive_failures=m["consecutive_failures"],
        capped_notified_on=m["capped_notified_on"],
    )


def attempt_from_mapping(m: Any) -> AutoTopup:
    return AutoTopup(
        tenant_id=m["tenant_id"],
        id=m["id"],
        status=AutoTopupStatus(m["status"]),
        provider=m["provider"],
        currency=m["currency"],
        amount=m["amount"],
        trigger_available=m["trigger_available"],
        trigger_cause=m["trigger_cause"],
        payment_method_id=m["payment_method_id"],
        topup_id=m["topup_id"],
        provider_payment_id=m["provider_payment_id"],
        action_url=m["action_url"],
        failure_reason=m["failure_reason"],
        failure_code=m["failure_code"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        settled_at=m["settled_at"],
    )


# The trigger, in one statement: the wallet is checked where it stands in this transaction (active, below
# its threshold, not paused), the attempt inserted unless one is in flight (the partial unique index), the
# wallet paused while it is, and the runner's job queued. Nothing happens when any condition fails.
_START_SQL = """
    WITH due AS (
        SELECT tenant_id, currency, balance - reserved AS available FROM wallets
         WHERE tenant_id = {tenant} AND auto_topup_enabled AND auto_topup_threshold IS NOT NULL
           AND balance - reserved < auto_topup_threshold
           AND (auto_topup_paused_until IS NULL OR auto_topup_paused_until <= now())
    ), attempt AS (
        INSERT INTO auto_topups (tenant_id, id, status, provider, currency, trigger_available, trigger_cause)
        SELECT tenant_id, {id}, 'created', '', currency, available, {cause} FROM due
        ON CONFLICT (tenant_id) WHERE status IN ('created', 'processing', 'requires_action') DO NOTHING
        RETURNING tenant_id, id
    ), paused AS (
        UPDATE wallets SET auto_topup_paused_until = 'infinity'
          FROM attempt WHERE wallets.tenant_id = attempt.tenant_id
    ), job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
        SELECT 0, {entrypoint}, {payload}, now(), 'queued' FROM attempt
        RETURNING id, entrypoint, priority
    ), logged AS (
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job
    )
    SELECT id FROM attempt
"""
_START = text(
    _START_SQL.format(
        tenant="CAST(:tenant_id AS varchar)",
        id="CAST(:id AS varchar)",
        cause="CAST(:cause AS text)",
        entrypoint="CAST(:entrypoint AS text)",
        payload="CAST(:payload AS bytea)",
    )
)
_START_RAW = _START_SQL.format(
    tenant="$1::varchar", id="$2::varchar", cause="$3::text", entrypoint="$4::text", payload="$5::bytea"
)


def _start_params(tenant_id: str, cause: str) -> tuple[str, str, str, str, bytes]:
    attempt_id = new_auto_topup_id()
    # As services/queue.py encodes a job's payload.
    payload = json.dumps(
        {"auto_topup_id": attempt_id, "tenant_id": tenant_id}, sort_keys=True, separators=(",", ":")
    ).encode()
    return tenant_id, attempt_id, cause[:200], RUN_AUTO_TOPUP, payload


async def start_if_due(session: AsyncSession, tenant_id: str, cause: str) -> str | None:
    """The trigger in the caller's transaction: the new attempt's id, or None when none was due."""
    tenant, attempt_id, cause, entrypoint, payload = _start_params(tenant_id, cause)
    row = (
        await session.execute(
            _START,
            {
                "tenant_id": tenant,
                "id": attempt_id,
                "cause": cause,
                "entrypoint": entrypoint,
                "payload": payload,
            },
        )
    ).first()
    return None if row is None else str(row[0])


async def start_if_due_raw(conn: asyncpg.Connection, tenant_id: str, cause: str) -> str | None:
    """start_if_due on the charge writer's asyncpg connection, inside its open transaction."""
    value = await conn.fetchval(_START_RAW, *_start_params(tenant_id, cause))
    return None if value is None else str(value)


class AutoTopupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- settings ----------------------------------------------------------------------------------

    async def config(self, tenant_id: str, *, for_update: bool = False) -> AutoTopupConfig:
        query = select(t.auto_topup_settings).where(st.tenant_id == tenant_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return AutoTopupConfig() if row is None else config_from_mapping(row._mapping)

    async def save_config(
        self, tenant_id: str, config: AutoTopupConfig, *, actor: str, lift_pause: bool = False
    ) -> None:
        """Store the settings and mirror what the charge writer needs onto the wallet row. `lift_pause`
        (switching it on again) ends a back-off or cap pause, never the pause of one in flight."""
        values = {
            "enabled": config.enabled,
            "threshold": config.threshold,
            "amount": config.amount,
            "target_balance": config.target_balance,
            "payment_method_id": config.payment_method_id,
            "max_per_day": config.max_per_day,
            "monthly_cap": config.monthly_cap,
            "locked": config.locked,
            "locked_reason": config.locked_reason,
            "disabled_reason": config.disabled_reason,
            "consecutive_failures": config.consecutive_failures,
            "capped_notified_on": config.capped_notified_on,
            "updated_by": actor,
        }
        statement = pg_insert(t.auto_topup_settings).values(tenant_id=tenant_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id"], set_={**values, "updated_at": func.now()}
            )
        )
        mirrored: dict[str, Any] = {
            "auto_topup_enabled": config.active,
            "auto_topup_threshold": config.threshold if config.enabled else None,
            "auto_topup_amount": config.amount,
        }
        if lift_pause and await self.in_flight(tenant_id) is None:
            mirrored["auto_topup_paused_until"] = None
        await self.session.execute(update(t.wallets).where(w.tenant_id == tenant_id).values(**mirrored))

    async def set_state(self, tenant_id: str, **values: Any) -> None:
        """The runner's own fields: consecutive_failures, disabled_reason, capped_notified_on, ..."""
        await self.session.execute(
            update(t.auto_topup_settings)
            .where(st.tenant_id == tenant_id)
            .values(**values, updated_at=func.now())
        )

    async def pause(self, tenant_id: str, until: datetime | None) -> None:
        """When balance changes may start the next attempt (None: at once)."""
        await self.session.execute(
            update(t.wallets).where(w.tenant_id == tenant_id).values(auto_topup_paused_until=until)
        )

    async def disable(self, tenant_id: str, reason: str) -> None:
        await self.set_state(tenant_id, disabled_reason=reason)
        await self.session.execute(
            update(t.wallets)
            .where(w.tenant_id == tenant_id)
            .values(auto_topup_enabled=False, auto_topup_paused_until=None)
        )

    async def paused_until(self, tenant_id: str) -> datetime | None:
        return (
            await self.session.execute(select(w.auto_topup_paused_until).where(w.tenant_id == tenant_id))
        ).scalar_one_or_none()

    # --- attempts ----------------------------------------------------------------------------------

    async def get(self, tenant_id: str, attempt_id: str, *, for_update: bool = False) -> AutoTopup:
        query = select(t.auto_topups).where(a.tenant_id == tenant_id, a.id == attempt_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            raise NotFound("auto top-up", attempt_id)
        return attempt_from_mapping(row._mapping)

    async def by_topup(self, tenant_id: str, topup_id: str, *, for_update: bool = False) -> AutoTopup | None:
        query = select(t.auto_topups).where(a.tenant_id == tenant_id, a.topup_id == topup_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else attempt_from_mapping(row._mapping)

    async def in_flight(self, tenant_id: str) -> AutoTopup | None:
        row = (
            await self.session.execute(
                select(t.auto_topups).where(
                    a.tenant_id == tenant_id, a.status.in_([s.value for s in IN_FLIGHT])
                )
            )
        ).one_or_none()
        return None if row is None else attempt_from_mapping(row._mapping)

    async def update(self, tenant_id: str, attempt_id: str, **values: Any) -> AutoTopup:
        if isinstance(values.get("status"), AutoTopupStatus):
            values["status"] = values["status"].value
        row = (
            await self.session.execute(
                update(t.auto_topups)
                .where(a.tenant_id == tenant_id, a.id == attempt_id)
                .values(**values, updated_at=func.now())
                .returning(*t.auto_topups.c)
            )
        ).one()
        return attempt_from_mapping(row._mapping)

    async def list_recent(
        self, tenant_id: str, *, limit: int = 50, before: datetime | None = None
    ) -> list[AutoTopup]:
        query = select(t.auto_topups).where(a.tenant_id == tenant_id)
        if before is not None:
            query = query.where(a.created_at < before)
        rows = (
            await self.session.execute(query.order_by(a.created_at.desc(), a.id.desc()).limit(limit))
        ).all()
        return [attempt_from_mapping(r._mapping) for r in rows]

    async def counted_since(self, tenant_id: str, since: datetime, *, excluding: str) -> tuple[int, int]:
        """How many auto top-ups (succeeded and in flight, not `excluding`) since then, and their amount."""
        row = (
            await self.session.execute(
                select(func.count(), func.coalesce(func.sum(a.amount), 0)).where(
                    a.tenant_id == tenant_id,
                    a.created_at >= since,
                    a.id != excluding,
                    a.status.in_([s.value for s in COUNTED]),
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def stale(self, older_than_seconds: int, *, limit: int = 200) -> list[AutoTopup]:
        """Created or processing attempts nobody finished (a job that gave up): reconcile resumes them."""
        rows = (
            await self.session.execute(
                select(t.auto_topups)
                .where(
                    a.status.in_([AutoTopupStatus.CREATED.value, AutoTopupStatus.PROCESSING.value]),
                    a.updated_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
                )
                .order_by(a.created_at)
                .limit(limit)
            )
        ).all()
        return [attempt_from_mapping(r._mapping) for r in rows]

    async def waiting_longer_than(self, seconds: int, *, limit: int = 200) -> list[AutoTopup]:
        """Stripe attempts waiting for the customer's 3-D Secure confirmation for longer than `seconds`."""
        rows = (
            await self.session.execute(
                select(t.auto_topups)
                .where(
                    a.status == AutoTopupStatus.REQUIRES_ACTION.value,
                    a.provider == "stripe",
                    a.updated_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds),
                )
                .order_by(a.created_at)
                .limit(limit)
            )
        ).all()
        return [attempt_from_mapping(r._mapping) for r in rows]
