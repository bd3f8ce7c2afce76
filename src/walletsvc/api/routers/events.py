"""The event log, newest first: every tenant's for admins, the caller's own for a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from walletsvc.api.deps import AdminDep, SessionDep, WalletReaderDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import Page, decode_int_cursor, encode_cursor, problem_responses
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.domain.events import EventType
from walletsvc.services.events import Event, list_events

router = APIRouter(tags=["events"], route_class=TransactionalRoute)

Limit = Annotated[int, Query(ge=1, le=500, description="Events per page")]
TypeFilter = Annotated[EventType | None, Query(description="Only events of this type")]


class EventOut(BaseModel):
    id: str = Field(examples=["evt_3f2a9c0d6b1e4a7f8c5d2e1b0a9f8e7d"])
    type: EventType
    tenant_id: str
    created_at: datetime
    payload: dict[str, Any] = Field(
        description="What happened; money as the API names it, minor units and a currency",
        examples=[{"adjustment_id": "adj_1", "amount": {"amount": 50000, "currency": "INR"}}],
    )
    delivery: str = Field(
        description="`pending`, or `no_endpoints`: webhook endpoints do not exist yet",
        examples=["no_endpoints"],
    )

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls(
            id=e.id,
            type=EventType(e.type),
            tenant_id=e.tenant_id,
            created_at=e.created_at,
            payload=e.payload,
            delivery=e.delivery,
        )


async def _page(
    session: SessionDep, tenant_id: str | None, type: EventType | None, cursor: str | None, limit: int
) -> Page[EventOut]:
    events, next_before = await list_events(
        session, tenant_id=tenant_id, type=type, before_seq=decode_int_cursor(cursor), limit=limit
    )
    return Page[EventOut](
        data=[EventOut.of(e) for e in events],
        next_cursor=encode_cursor(next_before) if next_before is not None else None,
    )


@router.get("/v1/events", summary="The caller's events, newest first", responses=problem_responses(403))
async def list_my_events(
    session: SessionDep,
    caller: WalletReaderDep,
    type: TypeFilter = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[EventOut]:
    return await _page(session, caller.own_tenant(), type, cursor, limit)


@router.get(
    "/v1/admin/events",
    summary="Every tenant's events, newest first",
    tags=["admin: events"],
    responses=problem_responses(403),
)
async def list_all_events(
    session: SessionDep,
    admin: AdminDep,
    tenant_id: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN)] = None,
    type: TypeFilter = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[EventOut]:
    return await _page(session, tenant_id, type, cursor, limit)
