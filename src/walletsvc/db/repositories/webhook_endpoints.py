"""Webhook endpoints, their deliveries (one per event and endpoint) and every delivery attempt.

Secrets are read and written here only as ciphertexts; services/webhook_endpoints.py encrypts them."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.webhooks import AttemptRecord, DeliveryRecord, EndpointRecord

E = t.webhook_endpoints
D = t.webhook_deliveries
A = t.webhook_attempts
_LIVE: ColumnElement[bool] = E.c.deleted_at.is_(None)


def endpoint_from_row(row: Any) -> EndpointRecord:
    m = row._mapping
    return EndpointRecord(
        id=m["id"],
        tenant_id=m["tenant_id"],
        url=m["url"],
        description=m["description"],
        event_types=tuple(m["event_types"] or ()),
        enabled=m["enabled"],
        disabled_reason=m["disabled_reason"],
        disabled_at=m["disabled_at"],
        secret_ciphertext=bytes(m["secret_ciphertext"]),
        previous_secret_ciphertext=(
            bytes(m["previous_secret_ciphertext"]) if m["previous_secret_ciphertext"] is not None else None
        ),
        previous_secret_expires_at=m["previous_secret_expires_at"],
        failing_since=m["failing_since"],
        last_success_at=m["last_success_at"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _same_named_columns(row: Any, record: type[DeliveryRecord | AttemptRecord]) -> dict[str, Any]:
    """The row's columns named like the record's fields (these records are the rows, column for column)."""
    m = row._mapping
    return {f.name: m[f.name] for f in fields(record)}


def delivery_from_row(row: Any) -> DeliveryRecord:
    return DeliveryRecord(**_same_named_columns(row, DeliveryRecord))


def attempt_from_row(row: Any) -> AttemptRecord:
    return AttemptRecord(**_same_named_columns(row, AttemptRecord))


_DELIVERY_COLUMNS = "id, tenant_id, event_id, endpoint_id, status, attempts, next_attempt_at, delivered_at, created_at, updated_at"


class WebhookEndpointRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(
        self,
        *,
        id: str,
        tenant_id: str | None,
        url: str,
        description: str,
        event_types: list[str],
        enabled: bool,
        secret_ciphertext: bytes,
        created_by: str,
    ) -> EndpointRecord:
        row = (
            await self.session.execute(
                insert(E)
                .values(
                    id=id,
                    tenant_id=tenant_id,
                    url=url,
                    description=description,
                    event_types=event_types,
                    enabled=enabled,
                    secret_ciphertext=secret_ciphertext,
                    created_by=created_by,
                )
                .returning(*E.c)
            )
        ).one()
        return endpoint_from_row(row)

    async def get(self, endpoint_id: str, *, for_update: bool = False) -> EndpointRecord | None:
        query = select(E).where(E.c.id == endpoint_id, _LIVE)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return endpoint_from_row(row) if row is not None else None

    async def page(
        self, *, tenant_id: str | None, after: str | None, limit: int
    ) -> tuple[list[EndpointRecord], str | None]:
        """Oldest first by id (ids sort by creation time); answers a page and the id to continue after."""
        query = select(E).where(_LIVE).order_by(E.c.id).limit(limit + 1)
        if tenant_id is not None:
            query = query.where(E.c.tenant_id == tenant_id)
        if after is not None:
            query = query.where(E.c.id > after)
        rows = (await self.session.execute(query)).all()
        records = [endpoint_from_row(r) for r in rows[:limit]]
        return records, (records[-1].id if len(rows) > limit else None)

    async def update(self, endpoint_id: str, **changes: Any) -> EndpointRecord:
        row = (
            await self.session.execute(
                update(E)
                .where(E.c.id == endpoint_id, _LIVE)
                .values(**changes, updated_at=func.now())
                .returning(*E.c)
            )
        ).one()
        return endpoint_from_row(row)

    async def delete(self, endpoint_id: str) -> None:
        """Soft delete: the endpoint's deliveries and attempts stay readable on their events; its secrets
        are forgotten."""
        await self.session.execute(
            update(E)
            .where(E.c.id == endpoint_id)
            .values(
                deleted_at=func.now(),
                enabled=False,
                updated_at=func.now(),
                secret_ciphertext=b"",
                previous_secret_ciphertext=None,
            )
        )

    async def live_for(self, tenant_id: str) -> list[EndpointRecord]:
        """Enabled endpoints that could want an event of this tenant (the caller checks their types)."""
        query = (
            select(E)
            .where(_LIVE, E.c.enabled, or_(E.c.tenant_id.is_(None), E.c.tenant_id == tenant_id))
            .order_by(E.c.id)
        )
        return [endpoint_from_row(r) for r in (await self.session.execute(query)).all()]

    async def mark_success(self, endpoint_id: str) -> None:
        await self.session.execute(
            update(E).where(E.c.id == endpoint_id).values(last_success_at=func.now(), failing_since=None)
        )

    async def mark_failure(self, endpoint_id: str) -> datetime:
        """Note a failed attempt; answers since when the endpoint has been failing with no success."""
        since: datetime = (
            await self.session.execute(
                update(E)
                .where(E.c.id == endpoint_id)
                .values(failing_since=func.coalesce(E.c.failing_since, func.now()))
                .returning(E.c.failing_since)
            )
        ).scalar_one()
        return since


class WebhookDeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_once(self, *, tenant_id: str, event_id: str, endpoint_id: str) -> int | None:
        """A delivery of this event to this endpoint; None when there is one already (a rerun)."""
        value = (
            await self.session.execute(
                pg_insert(D)
                .values(
                    tenant_id=tenant_id,
                    event_id=event_id,
                    endpoint_id=endpoint_id,
                    next_attempt_at=func.now(),
                )
                .on_conflict_do_nothing(constraint="webhook_deliveries_once")
                .returning(D.c.id)
            )
        ).scalar_one_or_none()
        return int(value) if value is not None else None

    async def get(self, delivery_id: int, *, for_update: bool = False) -> DeliveryRecord | None:
        query = select(D).where(D.c.id == delivery_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return delivery_from_row(row) if row is not None else None

    async def find(
        self, event_id: str, endpoint_id: str, *, for_update: bool = False
    ) -> DeliveryRecord | None:
        query = select(D).where(D.c.event_id == event_id, D.c.endpoint_id == endpoint_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return delivery_from_row(row) if row is not None else None

    async def of_event(self, event_id: str) -> list[DeliveryRecord]:
        rows = (await self.session.execute(select(D).where(D.c.event_id == event_id).order_by(D.c.id))).all()
        return [delivery_from_row(r) for r in rows]

    async def attempts_of(self, delivery_ids: list[int]) -> list[AttemptRecord]:
        if not delivery_ids:
            return []
        rows = (
            await self.session.execute(
                select(A).where(A.c.delivery_id.in_(delivery_ids)).order_by(A.c.delivery_id, A.c.attempt)
            )
        ).all()
        return [attempt_from_row(r) for r in rows]

    async def record_attempt(
        self,
        delivery: DeliveryRecord,
        *,
        attempt: int,
        outcome: str,
        status_code: int | None,
        error: str | None,
        response_body: str | None,
        duration_ms: int,
        started_at: datetime,
    ) -> None:
        await self.session.execute(
            insert(A).values(
                tenant_id=delivery.tenant_id,
                delivery_id=delivery.id,
                attempt=attempt,
                outcome=outcome,
                status_code=status_code,
                error=error,
                response_body=response_body,
                duration_ms=duration_ms,
                started_at=started_at,
            )
        )

    async def set_state(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int | None = None,
        next_attempt_in: float | None = None,
        delivered: bool = False,
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "updated_at": func.now(),
            "next_attempt_at": (
                func.now() + func.make_interval(0, 0, 0, 0, 0, 0, next_attempt_in)
                if next_attempt_in is not None
                else None
            ),
        }
        if attempts is not None:
            values["attempts"] = attempts
        if delivered:
            values["delivered_at"] = func.now()
        await self.session.execute(update(D).where(D.c.id == delivery_id).values(**values))

    async def cancel_pending_of(self, endpoint_id: str) -> None:
        """Stop the endpoint's deliveries still waiting for an attempt (their queued jobs then do nothing)."""
        await self.session.execute(
            update(D)
            .where(D.c.endpoint_id == endpoint_id, D.c.status == "pending")
            .values(status="canceled", next_attempt_at=None, updated_at=func.now())
        )
