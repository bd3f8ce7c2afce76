"""The event log, newest first: every tenant's for admins, the caller's own for a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, status
from pydantic import BaseModel, Field

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep, WalletReaderDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import Page, decode_int_cursor, encode_cursor, problem_responses
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.api.schemas.webhook_endpoints import DeliveryOut, RedeliverIn, RedeliverOut
from walletsvc.domain.errors import NotFound
from walletsvc.domain.events import EventType
from walletsvc.services.events import Event, get_event, list_events
from walletsvc.services.webhook_delivery import deliveries_of, redeliver

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
        description="`pending` (the worker has not dispatched it yet), `dispatched` (its webhook deliveries "
        "and e-mails are queued: see GET /v1/admin/events/{event_id}), or `no_endpoints` (nobody wanted it)",
        examples=["dispatched"],
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


EVENT_ID = Annotated[
    str, Path(pattern=r"^evt_[0-9a-f]{32}$", examples=["evt_3f2a9c0d6b1e4a7f8c5d2e1b0a9f8e7d"])
]


class EventWithDeliveries(EventOut):
    deliveries: list[DeliveryOut] = Field(
        description="One per webhook endpoint it went to, with every attempt"
    )


@router.get(
    "/v1/events/{event_id}", summary="One of the caller's events", responses=problem_responses(403, 404)
)
async def get_my_event(event_id: EVENT_ID, session: SessionDep, caller: WalletReaderDep) -> EventOut:
    event = await get_event(session, event_id)
    if event is None or event.tenant_id != caller.own_tenant():
        raise NotFound("event", event_id)
    return EventOut.of(event)


@router.get(
    "/v1/admin/events/{event_id}",
    summary="An event with its webhook deliveries and every attempt",
    tags=["admin: events"],
    responses=problem_responses(403, 404),
)
async def get_event_deliveries(
    event_id: EVENT_ID, session: SessionDep, admin: AdminDep
) -> EventWithDeliveries:
    event = await get_event(session, event_id)
    if event is None:
        raise NotFound("event", event_id)
    found = await deliveries_of(session, event_id)
    return EventWithDeliveries(
        **EventOut.of(event).model_dump(),
        deliveries=[DeliveryOut.of(d, found.attempts[d.id]) for d in found.deliveries],
    )


@router.post(
    "/v1/admin/events/{event_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a fresh delivery attempt of an event",
    description="To `endpoint_id`, or (no body) to every enabled endpoint the event went to or that wants it "
    "now: a delivered, failed or canceled delivery is attempted once more (a re-enabled endpoint's too), with "
    "its retries. 409 `CONFLICT` when the endpoint is disabled or no enabled endpoint takes the event.",
    tags=["admin: events"],
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def redeliver_event(
    event_id: EVENT_ID,
    session: SessionDep,
    admin: AdminDep,
    body: Annotated[RedeliverIn, Body(default_factory=RedeliverIn)],
) -> RedeliverOut:
    queued = await redeliver(session, event_id, endpoint_id=body.endpoint_id)
    return RedeliverOut(event_id=event_id, queued=queued)
