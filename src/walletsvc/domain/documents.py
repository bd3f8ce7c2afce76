"""Issued documents: top-up invoices, credit notes and monthly statements, and how they are numbered.

A document is written once, with everything it shows copied into it (seller, buyer, lines, taxes), and
never changes; its PDF is rendered from it alone, so rendering it again gives the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from walletsvc.domain.errors import InvalidRequest


class DocumentKind(StrEnum):
    INVOICE = "invoice"  # a prepayment (advance payment) invoice for a succeeded top-up
    CREDIT_NOTE = "credit_note"  # for a top-up refund, correcting the top-up's invoice
    STATEMENT = "statement"  # a calendar month of a wallet's ledger


# Each kind is its own gap-free series: WS-2026-000123, WS-CN-2026-000004, WS-ST-2026-000010.
SERIES_SUFFIX = {DocumentKind.INVOICE: "", DocumentKind.CREDIT_NOTE: "-CN", DocumentKind.STATEMENT: "-ST"}
NUMBER_DIGITS = 6
PREFIX_PATTERN = r"^[A-Z0-9]{1,10}$"
PERIOD_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


def series_name(prefix: str, kind: DocumentKind) -> str:
    return prefix + SERIES_SUFFIX[kind]


def counter_year(issued_at: datetime, *, yearly_reset: bool) -> int:
    """The counter a number is taken from: one per calendar year (UTC), or one for ever (0)."""
    return issued_at.astimezone(UTC).year if yearly_reset else 0


def format_number(series: str, year: int, seq: int) -> str:
    """`WS-2026-000123`; without a yearly reset `WS-000123`. More than 999,999 in a year just grows."""
    body = f"{seq:0{NUMBER_DIGITS}d}"
    return f"{series}-{year}-{body}" if year else f"{series}-{body}"


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar month in UTC: [start, end)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        if not re.match(PERIOD_PATTERN, text):
            raise InvalidRequest("a statement period is a calendar month written YYYY-MM, e.g. 2026-11")
        year, month = int(text[:4]), int(text[5:])
        if year < 2000:
            raise InvalidRequest("a statement period is a month from 2000 on")
        return cls(year, month)

    @classmethod
    def of(cls, moment: datetime) -> Period:
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class Party:
    """A seller or a buyer as the document names it."""

    legal_name: str
    address_lines: tuple[str, ...] = ()
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-3
    tax_id: str | None = None
    email: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "legal_name": self.legal_name,
            "address_lines": list(self.address_lines),
            "city": self.city,
            "state": self.state,
            "postal_code": self.postal_code,
            "country": self.country,
            "tax_id": self.tax_id,
            "email": self.email,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Party:
        return cls(
            legal_name=data["legal_name"],
            address_lines=tuple(data.get("address_lines") or ()),
            city=data.get("city"),
            state=data.get("state"),
            postal_code=data.get("postal_code"),
            country=data.get("country"),
            tax_id=data.get("tax_id"),
            email=data.get("email"),
        )

    def locality(self) -> str:
        """`Bengaluru KA 560001, IND`: the lines after the street address."""
        place = " ".join(p for p in (self.city, self.state, self.postal_code) if p)
        return ", ".join(p for p in (place, self.country) if p)


@dataclass(frozen=True, slots=True)
class BillingDetails:
    """The name, address and tax id a tenant's documents name it by."""

    tenant_id: str
    party: Party
    updated_by: str | None  # None: never set (the tenant's name and country stand in)
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an invoice or credit note. `amount` is in minor units; a bonus line has amount 0."""

    description: str
    amount: int
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "amount": self.amount, "note": self.note}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Line:
        return cls(description=data["description"], amount=int(data["amount"]), note=data.get("note"))


@dataclass(frozen=True, slots=True)
class Document:
    tenant_id: str
    id: str
    kind: DocumentKind
    number: str
    issued_at: datetime
    currency: str
    seller: Party
    buyer: Party
    subtotal: int  # net of tax
    tax_total: int
    total: int  # subtotal + tax_total
    ledger_amount: int  # the money the ledger rows it describes moved (a statement: the net change)
    source_type: str  # "topup", "topup_refund", "period"
    source_id: str
    lines: tuple[Line, ...] = ()
    taxes: tuple[dict[str, Any], ...] = ()  # {"label", "rate_percent" (a decimal string), "amount"}
    details: dict[str, Any] = field(default_factory=dict)  # payment reference, tax rule, statement figures
    corrects_id: str | None = None  # a credit note: the invoice it corrects
    corrects_number: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None

    @property
    def file_name(self) -> str:
        return f"{self.number}.pdf"
