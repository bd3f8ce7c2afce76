"""Invoices, credit notes and monthly statements: as JSON and as PDF, for the tenant and for admins."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from walletsvc.api.deps import AdminDep, SessionDep, WalletReaderDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import Page, decode_str_cursor, encode_cursor, problem_responses
from walletsvc.api.schemas.documents import DOCUMENT_ID_PATTERN, DocumentOut
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.db.repositories.documents import DocumentFilter, DocumentRepository
from walletsvc.domain.documents import PERIOD_PATTERN, Document, DocumentKind, Period
from walletsvc.domain.errors import InvalidRequest
from walletsvc.services.documents import document_pdf
from walletsvc.services.statements import issue_statement

router = APIRouter(tags=["invoices"], route_class=TransactionalRoute)

TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN)]
DocumentIdPath = Annotated[str, Path(pattern=DOCUMENT_ID_PATTERN, description="A document id: doc_...")]
PeriodPath = Annotated[str, Path(pattern=PERIOD_PATTERN, description="A calendar month (UTC): YYYY-MM")]
Limit = Annotated[int, Query(ge=1, le=200, description="Documents per page")]
KindQuery = Annotated[DocumentKind | None, Query(description="Only documents of this kind")]
SinceQuery = Annotated[datetime | None, Query(description="Issued from this time on (inclusive), ISO 8601")]
UntilQuery = Annotated[datetime | None, Query(description="Issued before this time (exclusive), ISO 8601")]

PDF_RESPONSE: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"application/pdf": {}},
        "description": "The PDF, as an attachment named after the document's number",
    }
}
_CURSOR = re.compile(r"^(?P<at>[0-9T:.+\-]{19,40})\|(?P<id>doc_[0-9a-f]{32})$")
_STATEMENT_NOTE = (
    "A statement is issued once, when its month (UTC) has ended (the worker issues last month's for every "
    "tenant; asking for an ended month issues it then) and never changes. A month not ended yet answers 409 "
    "PERIOD_NOT_ENDED; a month that ended before the tenant was opened, 404."
)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidRequest("the time is out of range") from exc


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    raw = decode_str_cursor(cursor)
    if raw is None:
        return None
    found = _CURSOR.match(raw)
    try:
        if found is None:
            raise ValueError(raw)
        return datetime.fromisoformat(found["at"]), found["id"]
    except ValueError as exc:
        raise InvalidRequest("the cursor is not valid") from exc


async def _page(
    session: SessionDep,
    tenant_id: str,
    *,
    cursor: str | None,
    limit: int,
    base: str,
    kind: DocumentKind | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[DocumentOut]:
    since, until = _aware(since), _aware(until)
    if since and until and until <= since:
        raise InvalidRequest("`until` must be later than `since`")
    f = DocumentFilter(
        tenant_id=tenant_id, kind=kind, since=since, until=until, before=_decode_cursor(cursor)
    )
    docs, next_before = await DocumentRepository(session).page(f, limit=limit)
    return Page[DocumentOut](
        data=[DocumentOut.of(d, pdf_url=f"{base}/invoices/{d.id}.pdf") for d in docs],
        next_cursor=encode_cursor(f"{next_before[0].isoformat()}|{next_before[1]}") if next_before else None,
    )


async def pdf_response(document: Document) -> Response:
    body = await document_pdf(document)
    return Response(
        content=body,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{document.file_name}"',
            "Cache-Control": "private, max-age=3600",  # an issued document never changes
        },
    )


# --- the tenant's own ----------------------------------------------------------------------------------


@router.get(
    "/v1/invoices",
    summary="The caller's invoices, credit notes and statements, newest first",
    responses=problem_responses(403),
)
async def list_invoices(
    session: SessionDep,
    caller: WalletReaderDep,
    kind: KindQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[DocumentOut]:
    return await _page(
        session,
        caller.own_tenant(),
        kind=kind,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
        base="/v1",
    )


@router.get(
    "/v1/invoices/{document_id}.pdf",
    summary="A document of the caller's as a PDF",
    response_class=Response,
    responses={**PDF_RESPONSE, **problem_responses(403, 404)},
)
async def get_invoice_pdf(
    document_id: DocumentIdPath, session: SessionDep, caller: WalletReaderDep
) -> Response:
    return await pdf_response(await DocumentRepository(session).get(caller.own_tenant(), document_id))


@router.get(
    "/v1/invoices/{document_id}", summary="A document of the caller's", responses=problem_responses(403, 404)
)
async def get_invoice(
    document_id: DocumentIdPath, session: SessionDep, caller: WalletReaderDep
) -> DocumentOut:
    document = await DocumentRepository(session).get(caller.own_tenant(), document_id)
    return DocumentOut.of(document, pdf_url=f"/v1/invoices/{document.id}.pdf")


@router.get(
    "/v1/statements",
    summary="The caller's issued monthly statements, newest first",
    description=_STATEMENT_NOTE,
    responses=problem_responses(403),
)
async def list_statements(
    session: SessionDep, caller: WalletReaderDep, cursor: str | None = None, limit: Limit = 50
) -> Page[DocumentOut]:
    return await _page(
        session, caller.own_tenant(), kind=DocumentKind.STATEMENT, cursor=cursor, limit=limit, base="/v1"
    )


@router.get(
    "/v1/statements/{period}.pdf",
    summary="The caller's statement for a month as a PDF",
    description=_STATEMENT_NOTE,
    response_class=Response,
    responses={**PDF_RESPONSE, **problem_responses(403, 404, 409)},
)
async def get_statement_pdf(period: PeriodPath, session: SessionDep, caller: WalletReaderDep) -> Response:
    return await pdf_response(await issue_statement(session, caller.own_tenant(), Period.parse(period)))


@router.get(
    "/v1/statements/{period}",
    summary="The caller's statement for a month",
    description=_STATEMENT_NOTE,
    responses=problem_responses(403, 404, 409),
)
async def get_statement(period: PeriodPath, session: SessionDep, caller: WalletReaderDep) -> DocumentOut:
    document = await issue_statement(session, caller.own_tenant(), Period.parse(period))
    return DocumentOut.of(document, pdf_url=f"/v1/statements/{period}.pdf")


# --- admins: any tenant's ------------------------------------------------------------------------------


@router.get(
    "/v1/admin/tenants/{tenant_id}/invoices",
    summary="A tenant's invoices, credit notes and statements, newest first",
    tags=["admin: invoices"],
    responses=problem_responses(403),
)
async def list_tenant_invoices(
    tenant_id: TenantIdPath,
    session: SessionDep,
    admin: AdminDep,
    kind: KindQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[DocumentOut]:
    return await _page(
        session,
        tenant_id,
        kind=kind,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
        base=f"/v1/admin/tenants/{tenant_id}",
    )


@router.get(
    "/v1/admin/tenants/{tenant_id}/invoices/{document_id}.pdf",
    summary="A tenant's document as a PDF",
    tags=["admin: invoices"],
    response_class=Response,
    responses={**PDF_RESPONSE, **problem_responses(403, 404)},
)
async def get_tenant_invoice_pdf(
    tenant_id: TenantIdPath, document_id: DocumentIdPath, session: SessionDep, admin: AdminDep
) -> Response:
    return await pdf_response(await DocumentRepository(session).get(tenant_id, document_id))


@router.get(
    "/v1/admin/tenants/{tenant_id}/invoices/{document_id}",
    summary="A tenant's document",
    tags=["admin: invoices"],
    responses=problem_responses(403, 404),
)
async def get_tenant_invoice(
    tenant_id: TenantIdPath, document_id: DocumentIdPath, session: SessionDep, admin: AdminDep
) -> DocumentOut:
    document = await DocumentRepository(session).get(tenant_id, document_id)
    return DocumentOut.of(document, pdf_url=f"/v1/admin/tenants/{tenant_id}/invoices/{document.id}.pdf")


@router.get(
    "/v1/admin/tenants/{tenant_id}/statements",
    summary="A tenant's issued monthly statements, newest first",
    description=_STATEMENT_NOTE,
    tags=["admin: invoices"],
    responses=problem_responses(403),
)
async def list_tenant_statements(
    tenant_id: TenantIdPath,
    session: SessionDep,
    admin: AdminDep,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[DocumentOut]:
    return await _page(
        session,
        tenant_id,
        kind=DocumentKind.STATEMENT,
        cursor=cursor,
        limit=limit,
        base=f"/v1/admin/tenants/{tenant_id}",
    )


@router.get(
    "/v1/admin/tenants/{tenant_id}/statements/{period}.pdf",
    summary="A tenant's statement for a month as a PDF",
    description=_STATEMENT_NOTE,
    tags=["admin: invoices"],
    response_class=Response,
    responses={**PDF_RESPONSE, **problem_responses(403, 404, 409)},
)
async def get_tenant_statement_pdf(
    tenant_id: TenantIdPath, period: PeriodPath, session: SessionDep, admin: AdminDep
) -> Response:
    return await pdf_response(await issue_statement(session, tenant_id, Period.parse(period)))


@router.get(
    "/v1/admin/tenants/{tenant_id}/statements/{period}",
    summary="A tenant's statement for a month",
    description=_STATEMENT_NOTE,
    tags=["admin: invoices"],
    responses=problem_responses(403, 404, 409),
)
async def get_tenant_statement(
    tenant_id: TenantIdPath, period: PeriodPath, session: SessionDep, admin: AdminDep
) -> DocumentOut:
    document = await issue_statement(session, tenant_id, Period.parse(period))
    return DocumentOut.of(document, pdf_url=f"/v1/admin/tenants/{tenant_id}/statements/{period}.pdf")
