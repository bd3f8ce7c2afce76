"""Invoices, credit notes, statements and billing details, as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from walletsvc.api.schemas.common import NO_NUL_PATTERN, MoneyOut
from walletsvc.domain.documents import BillingDetails, Document, DocumentKind, Party

DOCUMENT_ID_PATTERN = r"^doc_[0-9a-f]{32}$"
_LINE = r"^[^\x00-\x1f\x7f]*$"  # one line of text: no control characters (and so no NUL)

ShortText = Annotated[StrictStr, Field(max_length=200, pattern=_LINE)]

_PARTY_EXAMPLE: dict[str, Any] = {
    "legal_name": "Acme Calls Private Limited",
    "address_lines": ["4th floor, Prestige Tower", "MG Road"],
    "city": "Bengaluru",
    "state": "KA",
    "postal_code": "560001",
    "country": "IND",
    "tax_id": "29ABCDE1234F1ZW",
}


class BillingDetailsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_PARTY_EXAMPLE]})

    legal_name: ShortText = Field(min_length=1, description="The name invoices are made out to")
    address_lines: list[ShortText] = Field(
        default_factory=list, max_length=4, description="Street address lines"
    )
    city: Annotated[StrictStr, Field(max_length=100, pattern=_LINE)] | None = None
    state: Annotated[StrictStr, Field(max_length=50, pattern=r"^[A-Za-z0-9 -]*$")] | None = Field(
        default=None,
        description="State or region code. In India an ISO 3166-2:IN code (`KA`) or a GST state code (`29`): "
        "it decides CGST+SGST or IGST",
    )
    postal_code: Annotated[StrictStr, Field(max_length=20, pattern=r"^[A-Za-z0-9 -]*$")] | None = None
    country: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 3166-1 alpha-3, e.g. IND, DEU")
    tax_id: Annotated[StrictStr, Field(max_length=40, pattern=NO_NUL_PATTERN)] | None = Field(
        default=None,
        description="Checked in shape for the country: a GSTIN in India (with its state code and check "
        "character), a VAT number in the EU (the country prefix may be left out), 3 to 30 letters and "
        "digits elsewhere",
    )

    def party(self) -> Party:
        return Party(
            legal_name=self.legal_name,
            address_lines=tuple(self.address_lines),
            city=self.city,
            state=self.state,
            postal_code=self.postal_code,
            country=self.country,
            tax_id=self.tax_id,
        )


class PartyOut(BaseModel):
    legal_name: str
    address_lines: list[str]
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None
    tax_id: str | None

    @classmethod
    def of(cls, party: Party) -> PartyOut:
        return cls(
            legal_name=party.legal_name,
            address_lines=list(party.address_lines),
            city=party.city,
            state=party.state,
            postal_code=party.postal_code,
            country=party.country,
            tax_id=party.tax_id,
        )


class BillingDetailsOut(PartyOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "acme",
                    **_PARTY_EXAMPLE,
                    "updated_by": "user:owner-1",
                    "updated_at": "2026-12-01T10:00:00Z",
                }
            ]
        }
    )
    tenant_id: str
    updated_by: str | None = Field(
        description="Who set them last; null: never set (the tenant's name stands in)"
    )
    updated_at: datetime | None

    @classmethod
    def of_details(cls, details: BillingDetails) -> BillingDetailsOut:
        return cls(
            tenant_id=details.tenant_id,
            **PartyOut.of(details.party).model_dump(),
            updated_by=details.updated_by,
            updated_at=details.updated_at,
        )


class DocumentLineOut(BaseModel):
    description: str
    amount: MoneyOut = Field(description="Net of tax; a bonus line is 0")
    note: str | None


class TaxLineOut(BaseModel):
    label: str = Field(examples=["IGST"])
    rate_percent: str = Field(description="A decimal string, e.g. `18` or `9`", examples=["18"])
    amount: MoneyOut


class DocumentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "doc_5f0c3a9e2b7d4c1a8e6f0b2d4c6a8e0f",
                    "tenant_id": "acme",
                    "kind": "invoice",
                    "number": "WS-2026-000123",
                    "issued_at": "2026-11-05T10:30:00Z",
                    "currency": "INR",
                    "seller": {**_PARTY_EXAMPLE, "legal_name": "Walletsvc Telecom Pvt Ltd"},
                    "buyer": _PARTY_EXAMPLE,
                    "lines": [
                        {
                            "description": "Prepaid wallet credit (advance payment)",
                            "amount": {"amount": 42373, "currency": "INR"},
                            "note": None,
                        }
                    ],
                    "taxes": [
                        {"label": "IGST", "rate_percent": "18", "amount": {"amount": 7627, "currency": "INR"}}
                    ],
                    "subtotal": {"amount": 42373, "currency": "INR"},
                    "tax_total": {"amount": 7627, "currency": "INR"},
                    "total": {"amount": 50000, "currency": "INR"},
                    "source_type": "topup",
                    "source_id": "tu_3f2a9c0d6b1e4a7f",
                    "corrects": None,
                    "period": None,
                    "payment": {
                        "provider": "razorpay",
                        "payment_id": "pay_29QQoUBi66xm2f",
                        "topup_id": "tu_1",
                    },
                    "statement": None,
                    "pdf_url": "/v1/invoices/doc_5f0c3a9e2b7d4c1a8e6f0b2d4c6a8e0f.pdf",
                }
            ]
        }
    )
    id: str
    tenant_id: str
    kind: DocumentKind
    number: str = Field(
        description="Gap-free per series: WS-2026-000123, WS-CN-2026-000004, WS-ST-2026-000010"
    )
    issued_at: datetime
    currency: str
    seller: PartyOut
    buyer: PartyOut = Field(description="The tenant's billing details as they were when it was issued")
    lines: list[DocumentLineOut]
    taxes: list[TaxLineOut]
    subtotal: MoneyOut
    tax_total: MoneyOut
    total: MoneyOut
    source_type: str = Field(
        description="`topup` (an invoice), `topup_refund` (a credit note), `period` (a statement)"
    )
    source_id: str
    corrects: dict[str, str] | None = Field(
        description="A credit note: the invoice it corrects (`id`, `number`)"
    )
    period: str | None = Field(description="A statement: its month, YYYY-MM")
    payment: dict[str, str | None] | None = Field(
        description="Provider, payment id, top-up id (and refund ids)"
    )
    statement: dict[str, MoneyOut] | None = Field(
        description="A statement: `opening_balance`, `closing_balance`, `owed_at_issue`"
    )
    pdf_url: str

    @classmethod
    def of(cls, d: Document, *, pdf_url: str) -> DocumentOut:
        c = d.currency
        statement = None
        if d.kind is DocumentKind.STATEMENT:
            statement = {
                key: MoneyOut.of(int(d.details.get(key, 0)), c)
                for key in ("opening_balance", "closing_balance", "owed_at_issue")
            }
        payment = d.details.get("payment")
        return cls(
            id=d.id,
            tenant_id=d.tenant_id,
            kind=d.kind,
            number=d.number,
            issued_at=d.issued_at,
            currency=c,
            seller=PartyOut.of(d.seller),
            buyer=PartyOut.of(d.buyer),
            lines=[
                DocumentLineOut(description=x.description, amount=MoneyOut.of(x.amount, c), note=x.note)
                for x in d.lines
            ],
            taxes=[
                TaxLineOut(
                    label=t["label"], rate_percent=t["rate_percent"], amount=MoneyOut.of(int(t["amount"]), c)
                )
                for t in d.taxes
            ],
            subtotal=MoneyOut.of(d.subtotal, c),
            tax_total=MoneyOut.of(d.tax_total, c),
            total=MoneyOut.of(d.total, c),
            source_type=d.source_type,
            source_id=d.source_id,
            corrects={"id": d.corrects_id, "number": d.corrects_number or ""} if d.corrects_id else None,
            period=d.details.get("period"),
            payment={k: (str(v) if v is not None else None) for k, v in payment.items()} if payment else None,
            statement=statement,
            pdf_url=pdf_url,
        )
