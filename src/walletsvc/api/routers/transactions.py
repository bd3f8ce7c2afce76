"""History: the ledger, newest first, as pages or as a streamed CSV."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from walletsvc.api.deps import AdminDep, SessionDep, WalletReaderDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import (
    NO_NUL_PATTERN,
    Page,
    decode_int_cursor,
    encode_cursor,
    problem_responses,
)
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN, TransactionOut
from walletsvc.db.engine import Database
from walletsvc.db.repositories.ledger import LedgerFilter, LedgerRepository, stream_entries
from walletsvc.domain.errors import DatabaseUnavailable, InvalidRequest
from walletsvc.domain.ledger import EntryType, LedgerEntry
from walletsvc.domain.money import Money

log = logging.getLogger(__name__)
router = APIRouter(tags=["transactions"], route_class=TransactionalRoute)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a time without an offset is taken as UTC
    try:
        # 0001-01-01T00:00+05:00 is before year 1 in UTC: no datetime, and no PostgreSQL timestamp, holds it.
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidRequest("the time is out of range") from exc


class Filters:
    """The query parameters every history view shares."""

    def __init__(
        self,
        type: Annotated[EntryType | None, Query(description="Only rows of this type")] = None,
        since: Annotated[
            datetime | None, Query(description="From this time on (inclusive), ISO 8601")
        ] = None,
        until: Annotated[datetime | None, Query(description="Before this time (exclusive), ISO 8601")] = None,
        reference_id: Annotated[str | None, Query(max_length=200, pattern=NO_NUL_PATTERN)] = None,
    ) -> None:
        self.type = type
        self.since = _aware(since)
        self.until = _aware(until)
        self.reference_id = reference_id
        if self.since and self.until and self.until <= self.since:
            raise InvalidRequest("`until` must be later than `since`")

    def for_tenant(self, tenant_id: str | None, before_id: int | None = None) -> LedgerFilter:
        return LedgerFilter(
            tenant_id=tenant_id,
            type=self.type,
            since=self.since,
            until=self.until,
            reference_id=self.reference_id,
            before_id=before_id,
        )


FiltersDep = Annotated[Filters, Depends()]
Limit = Annotated[int, Query(ge=1, le=500, description="Rows per page")]


async def _page(session: SessionDep, f: LedgerFilter, limit: int) -> Page[TransactionOut]:
    entries, next_before = await LedgerRepository(session).page(f, limit=limit)
    return Page[TransactionOut](
        data=[TransactionOut.of(e) for e in entries],
        next_cursor=encode_cursor(next_before) if next_before is not None else None,
    )


@router.get("/v1/transactions", summary="The caller's ledger, newest first", responses=problem_responses(403))
async def list_transactions(
    session: SessionDep,
    caller: WalletReaderDep,
    filters: FiltersDep,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[TransactionOut]:
    return await _page(session, filters.for_tenant(caller.own_tenant(), decode_int_cursor(cursor)), limit)


@router.get(
    "/v1/admin/transactions",
    summary="Every tenant's ledger, newest first",
    tags=["admin: transactions"],
    responses=problem_responses(403),
)
async def list_all_transactions(
    session: SessionDep,
    admin: AdminDep,
    filters: FiltersDep,
    tenant_id: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN)] = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[TransactionOut]:
    return await _page(session, filters.for_tenant(tenant_id, decode_int_cursor(cursor)), limit)


CSV_COLUMNS = (
    "id",
    "created_at",
    "type",
    "amount",
    "currency",
    "amount_display",
    "balance_before",
    "balance_after",
    "counter_account",
    "reference_type",
    "reference_id",
    "description",
    "actor",
)


def _cell(text: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: never let a description do that.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(e: LedgerEntry) -> list[str | int]:
    return [
        e.id,
        e.created_at.isoformat(),
        e.type.value,
        e.amount,
        e.currency,
        Money(e.amount, e.currency).format().split(" ", 1)[1],
        e.balance_before,
        e.balance_after,
        _cell(e.counter_account),
        _cell(e.reference_type),
        _cell(e.reference_id),
        _cell(e.description),
        _cell(e.actor),
    ]


async def _csv_chunks(db: Database, f: LedgerFilter, rows_per_chunk: int = 1000) -> AsyncIterator[str]:
    """The CSV a chunk of rows at a time, read through a server-side cursor: memory stays flat however
    many rows the tenant has (1,000,000 rows: bench/export.py).

    The status and headers are sent before the first row is read, so a database lost mid-stream cannot
    become a 503 any more. The error is raised on: the server then closes the connection without the
    chunked body's last chunk, and the client sees a broken download (curl: "transfer closed", httpx:
    "incomplete chunked read"), never a shorter CSV that looks complete. Ending the generator normally
    here would do exactly that, so it must not catch and stop."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    pending = sent = 0
    # Its own connection: the request's session is closed by the time the body is streamed.
    try:
        async with db.engine.connect() as conn:
            async for entry in stream_entries(conn, f):
                writer.writerow(_csv_row(entry))
                pending += 1
                if pending >= rows_per_chunk:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
                    sent, pending = sent + pending, 0
    except DatabaseUnavailable:
        log.warning("CSV export cut off: the database was lost mid-stream", extra={"rows_sent": sent})
        raise
    yield buffer.getvalue()


@router.get(
    "/v1/transactions/export.csv",
    summary="The caller's ledger as CSV, streamed",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV, newest first"},
        **problem_responses(403),
    },
)
async def export_transactions(
    request: Request, caller: WalletReaderDep, filters: FiltersDep
) -> StreamingResponse:
    tenant_id = caller.own_tenant()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _csv_chunks(request.app.state.db, filters.for_tenant(tenant_id)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="transactions-{tenant_id}-{stamp}.csv"'},
    )
