"""Documents, their gap-free numbers, and the buyer's billing details."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.documents import BillingDetails, Document, DocumentKind, Line, Party
from walletsvc.domain.errors import NotFound

# The number is taken by updating the counter row, which stays locked until the issuing transaction
# ends: a concurrent issue waits for it, a rollback gives the number back. No sequence is used, because
# PostgreSQL sequences are never rolled back (a failed transaction would leave a gap).
_TAKE_NUMBER = text(
    """
    INSERT INTO document_counters AS c (series, year, last_seq) VALUES (:series, :year, 1)
    ON CONFLICT (series, year) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING last_seq
    """
)
# Two requests issuing the same statement at once: the second waits here, then finds the first's.
_LOCK_SOURCE = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


@dataclass(frozen=True, slots=True)
class DocumentFilter:
    tenant_id: str
    kind: DocumentKind | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: tuple[datetime, str] | None = None  # the cursor: documents issued before this one


def document_of(row: Any) -> Document:
    m = row._mapping
    details = dict(m["details"])
    return Document(
        tenant_id=m["tenant_id"],
        id=m["id"],
        kind=DocumentKind(m["kind"]),
        number=m["number"],
        issued_at=m["issued_at"],
        currency=m["currency"],
        seller=Party.from_json(m["seller"]),
        buyer=Party.from_json(m["buyer"]),
        subtotal=m["subtotal"],
        tax_total=m["tax_total"],
        total=m["total"],
        ledger_amount=m["ledger_amount"],
        source_type=m["source_type"],
        source_id=m["source_id"],
        lines=tuple(Line.from_json(line) for line in m["lines"]),
        taxes=tuple(m["taxes"]),
        details=details,
        corrects_id=m["corrects_id"],
        corrects_number=details.get("corrects_number"),
        period_start=m["period_start"],
        period_end=m["period_end"],
    )


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def take_number(self, series: str, year: int) -> int:
        """The next number of the series, in the caller's transaction (gap-free: see _TAKE_NUMBER)."""
        return int((await self.session.execute(_TAKE_NUMBER, {"series": series, "year": year})).scalar_one())

    async def lock_source(self, tenant_id: str, kind: DocumentKind, source_id: str) -> None:
        await self.session.execute(_LOCK_SOURCE, {"key": f"document:{tenant_id}:{kind.value}:{source_id}"})

    async def now(self) -> datetime:
        """The transaction's time: a document is issued at the time of the change it describes."""
        moment: datetime = (await self.session.execute(text("SELECT now()"))).scalar_one()
        return moment

    async def clock(self) -> datetime:
        """The time now (not the transaction's start): read after the number is taken."""
        moment: datetime = (await self.session.execute(text("SELECT clock_timestamp()"))).scalar_one()
        return moment

    async def add(self, document: Document, *, series: str, year: int, seq: int) -> Document:
        values = {
            "tenant_id": document.tenant_id,
            "id": document.id,
            "kind": document.kind.value,
            "series": series,
            "year": year,
            "seq": seq,
            "number": document.number,
            "issued_at": document.issued_at,
            "currency": document.currency,
            "subtotal": document.subtotal,
            "tax_total": document.tax_total,
            "total": document.total,
            "ledger_amount": document.ledger_amount,
            "source_type": document.source_type,
            "source_id": document.source_id,
            "corrects_id": document.corrects_id,
            "period_start": document.period_start,
            "period_end": document.period_end,
            "seller": document.seller.to_json(),
            "buyer": document.buyer.to_json(),
            "lines": [line.to_json() for line in document.lines],
            "taxes": list(document.taxes),
            "details": document.details,
        }
        row = (
            await self.session.execute(insert(t.documents).values(**values).returning(*t.documents.c))
        ).one()
        return document_of(row)

    async def find_by_source(
        self, tenant_id: str, kind: DocumentKind, source_type: str, source_id: str
    ) -> Document | None:
        c = t.documents.c
        row = (
            await self.session.execute(
                select(t.documents).where(
                    c.tenant_id == tenant_id,
                    c.kind == kind.value,
                    c.source_type == source_type,
                    c.source_id == source_id,
                )
            )
        ).first()
        return document_of(row) if row is not None else None

    async def get(self, tenant_id: str, document_id: str) -> Document:
        c = t.documents.c
        row = (
            await self.session.execute(
                select(t.documents).where(c.tenant_id == tenant_id, c.id == document_id)
            )
        ).first()
        if row is None:
            raise NotFound("document", document_id)
        return document_of(row)

    async def page(
        self, f: DocumentFilter, *, limit: int
    ) -> tuple[list[Document], tuple[datetime, str] | None]:
        """Newest first; answers a page and the (issued_at, id) to continue before (None on the last)."""
        rows = (await self.session.execute(_filtered(f).limit(limit + 1))).all()
        docs = [document_of(r) for r in rows[:limit]]
        return docs, ((docs[-1].issued_at, docs[-1].id) if len(rows) > limit else None)


def _filtered(f: DocumentFilter) -> Select[Any]:
    c = t.documents.c
    query = select(t.documents).where(c.tenant_id == f.tenant_id)
    if f.kind is not None:
        query = query.where(c.kind == f.kind.value)
    if f.since is not None:
        query = query.where(c.issued_at >= f.since)
    if f.until is not None:
        query = query.where(c.issued_at < f.until)
    if f.before is not None:
        issued_at, doc_id = f.before
        query = query.where((c.issued_at < issued_at) | ((c.issued_at == issued_at) & (c.id < doc_id)))
    return query.order_by(c.issued_at.desc(), c.id.desc())


class BillingDetailsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str) -> BillingDetails | None:
        row = (
            await self.session.execute(
                select(t.tenant_billing_details).where(t.tenant_billing_details.c.tenant_id == tenant_id)
            )
        ).first()
        return _details_of(row) if row is not None else None

    async def put(self, tenant_id: str, party: Party, *, actor: str) -> BillingDetails:
        values = {
            "legal_name": party.legal_name,
            "address_lines": list(party.address_lines),
            "city": party.city,
            "state": party.state,
            "postal_code": party.postal_code,
            "country": party.country,
            "tax_id": party.tax_id,
            "updated_by": actor,
        }
        statement = (
            insert(t.tenant_billing_details)
            .values(tenant_id=tenant_id, **values)
            .on_conflict_do_update(
                index_elements=[t.tenant_billing_details.c.tenant_id],
                set_={**values, "updated_at": text("now()")},
            )
            .returning(*t.tenant_billing_details.c)
        )
        return _details_of((await self.session.execute(statement)).one())


def _details_of(row: Any) -> BillingDetails:
    m = row._mapping
    return BillingDetails(
        tenant_id=m["tenant_id"],
        party=Party(
            legal_name=m["legal_name"],
            address_lines=tuple(m["address_lines"]),
            city=m["city"],
            state=m["state"],
            postal_code=m["postal_code"],
            country=m["country"],
            tax_id=m["tax_id"],
        ),
        updated_by=m["updated_by"],
        updated_at=m["updated_at"],
    )
