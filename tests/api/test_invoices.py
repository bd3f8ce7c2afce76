"""Invoices, credit notes and statements through the API: a paid top-up's invoice as JSON and PDF, a
refund's credit note, 50 top-ups confirmed at once numbered 1..50, billing details, statement refusals, and
a busy month whose statement equals the ledger to the minor unit.

The app here is one of its own, on a Database of its own, issuing under seller and GST settings and a
numbering prefix of its own, so its series is not shared with any other test."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.documents import SELLER_SETTINGS, pdf_text
from tests.fixtures.problems import assert_problem
from tests.fixtures.razorpay_flow import FakeRazorpay, paid_topup, start_topup, verify
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ledger, ref, usage_key, wallet_of
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.documents import Period
from walletsvc.services.statements import issue_due_statements, statement_figures

pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")

BUYER = {
    "legal_name": "Zoë Café Communications Pvt Ltd",
    "address_lines": ["4th floor, Prestige Tower", "MG Road"],
    "city": "Bengaluru",
    "state": "KA",
    "postal_code": "560001",
    "country": "IND",
    "tax_id": "29abcde1234f1zw",
}


@dataclass
class Issuer:
    client: httpx.AsyncClient
    db: Database
    prefix: str


@pytest.fixture
async def issuer(settings: Settings, database_url: str) -> AsyncIterator[Issuer]:
    prefix = "I" + uuid.uuid4().hex[:7].upper()
    db = Database.connect(database_url, pool_size=10, max_overflow=60)
    app = create_app(
        settings.model_copy(update={**SELLER_SETTINGS, "invoice_number_prefix": prefix}), database=db
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://walletsvc.test"
        ) as c:
            yield Issuer(client=c, db=db, prefix=prefix)
    finally:
        await app.state.gateways.aclose()
        await db.dispose()


async def _documents(client: httpx.AsyncClient, tenant_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/invoices", params={"limit": 200, **params}, headers=owner_headers(tenant_id)
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_a_paid_topup_has_an_invoice_as_json_and_as_pdf(
    issuer: Issuer, create_tenant: TenantFactory, razorpay: FakeRazorpay, admin_headers: dict[str, str]
) -> None:
    client = issuer.client
    tenant = await create_tenant()
    put = await client.put("/v1/billing-details", json=BUYER, headers=owner_headers(tenant["id"]))
    assert put.status_code == 200, put.text
    assert put.json()["tax_id"] == "29ABCDE1234F1ZW"
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 50_000)

    [invoice] = await _documents(client, tenant["id"])
    year = datetime.now(UTC).year
    assert invoice["number"] == f"{issuer.prefix}-{year}-000001"
    assert invoice["kind"] == "invoice"
    assert invoice["source_id"] == topup["id"]
    assert invoice["total"] == {"amount": 50_000, "currency": "INR"}
    # Bengaluru buys from Bengaluru: CGST + SGST, 9% each, adding up to the tax exactly.
    assert [(t["label"], t["rate_percent"]) for t in invoice["taxes"]] == [("CGST", "9"), ("SGST", "9")]
    tax = sum(t["amount"]["amount"] for t in invoice["taxes"])
    assert tax == invoice["tax_total"]["amount"] == 7627
    assert invoice["subtotal"]["amount"] + tax == 50_000
    assert invoice["payment"]["payment_id"] == payment["id"]
    assert invoice["buyer"]["legal_name"] == BUYER["legal_name"]
    assert invoice["seller"]["tax_id"] == SELLER_SETTINGS["seller_tax_id"]

    one = await client.get(f"/v1/invoices/{invoice['id']}", headers=owner_headers(tenant["id"]))
    assert one.status_code == 200
    assert one.json() == invoice
    pdf = await client.get(invoice["pdf_url"], headers=owner_headers(tenant["id"]))
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="{invoice["number"]}.pdf"'
    text = pdf_text(pdf.content)
    for expected in (
        invoice["number"],
        "Zoë Café Communications",
        "₹",
        "Rs 500.00",
        "CGST 9%",
        payment["id"],
    ):
        assert expected in text, f"{expected!r} not in:\n{text}"
    again = await client.get(invoice["pdf_url"], headers=owner_headers(tenant["id"]))
    assert again.content == pdf.content

    # Admins see it under the tenant; another tenant cannot, and nobody finds it under another tenant.
    admin = await client.get(
        f"/v1/admin/tenants/{tenant['id']}/invoices/{invoice['id']}.pdf", headers=admin_headers
    )
    assert admin.status_code == 200
    assert admin.content == pdf.content
    other = await create_tenant()
    for path, headers in (
        (f"/v1/invoices/{invoice['id']}", owner_headers(other["id"])),
        (f"/v1/invoices/{invoice['id']}.pdf", owner_headers(other["id"])),
        (f"/v1/admin/tenants/{other['id']}/invoices/{invoice['id']}", admin_headers),
    ):
        assert_problem(await client.get(path, headers=headers), 404, "NOT_FOUND")
    assert await _documents(client, other["id"]) == []
    assert await _documents(client, tenant["id"], kind="credit_note") == []
    assert await _documents(client, tenant["id"], until="2020-01-01T00:00:00Z") == []


async def test_a_refund_gets_a_credit_note_that_corrects_the_invoice(
    issuer: Issuer, create_tenant: TenantFactory, razorpay: FakeRazorpay, admin_headers: dict[str, str]
) -> None:
    client = issuer.client
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 100_000)
    refunded = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds",
        json={"amount": 23_600, "reason": "customer asked"},
        headers=admin_headers,
    )
    assert refunded.status_code == 201, refunded.text
    [note] = await _documents(client, tenant["id"], kind="credit_note")
    [invoice] = await _documents(client, tenant["id"], kind="invoice")
    assert note["number"] == f"{issuer.prefix}-CN-{datetime.now(UTC).year}-000001"
    assert note["corrects"] == {"id": invoice["id"], "number": invoice["number"]}
    assert note["source_id"] == refunded.json()["id"]
    assert note["total"]["amount"] == 23_600
    assert note["subtotal"]["amount"] == 20_000
    assert note["tax_total"]["amount"] == 3_600
    text = pdf_text((await client.get(note["pdf_url"], headers=owner_headers(tenant["id"]))).content)
    for expected in ("Credit note", note["number"], f"Corrects invoice: {invoice['number']}", "Rs 236.00"):
        assert expected in text, f"{expected!r} not in:\n{text}"


async def test_fifty_topups_confirmed_at_once_get_fifty_consecutive_numbers(
    issuer: Issuer, create_tenant: TenantFactory, razorpay: FakeRazorpay, admin_headers: dict[str, str]
) -> None:
    client = issuer.client
    tenants = [await create_tenant() for _ in range(5)]
    started = []
    for i in range(50):
        tenant_id = tenants[i % 5]["id"]
        topup = await start_topup(client, tenant_id, 10_000 + i)
        started.append((tenant_id, topup, razorpay.pay(topup["checkout"]["order_id"])))

    async def confirm(tenant_id: str, topup: dict[str, Any], payment: dict[str, Any]) -> str:
        answer = await verify(
            client, tenant_id, topup["id"], order_id=topup["checkout"]["order_id"], payment_id=payment["id"]
        )
        assert answer.status_code == 200, answer.text
        status: str = answer.json()["status"]
        return status

    assert await asyncio.gather(*(confirm(*s) for s in started)) == ["succeeded"] * 50
    invoices = [d for t in tenants for d in await _documents(client, t["id"], kind="invoice")]
    pattern = re.compile(rf"^{issuer.prefix}-{datetime.now(UTC).year}-(\d{{6}})$")
    numbers = sorted(int(pattern.match(d["number"]).group(1)) for d in invoices)  # type: ignore[union-attr]
    assert numbers == list(range(1, 51))  # none skipped, none twice
    assert {d["source_id"] for d in invoices} == {s[1]["id"] for s in started}  # one per top-up
    # The numbers follow the issue times: a later number is never dated earlier.
    by_number = sorted(invoices, key=lambda d: d["number"])
    assert [d["issued_at"] for d in by_number] == sorted(d["issued_at"] for d in by_number)


async def test_billing_details_are_checked_and_only_owners_and_admins_set_them(
    issuer: Issuer, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    client = issuer.client
    tenant = await create_tenant(name="Acme Calls")
    default = await client.get("/v1/billing-details", headers=member_headers(tenant["id"]))
    assert default.status_code == 200
    assert default.json()["legal_name"] == "Acme Calls"
    assert default.json()["updated_by"] is None
    bad = await client.put(
        "/v1/billing-details",
        json={**BUYER, "tax_id": "29ABCDE1234F1ZX"},
        headers=owner_headers(tenant["id"]),
    )
    problem = assert_problem(bad, 422, "VALIDATION_FAILED")
    assert problem["errors"][0]["loc"] == ["body", "tax_id"]
    wrong_state = await client.put(
        "/v1/billing-details", json={**BUYER, "state": "MH"}, headers=owner_headers(tenant["id"])
    )
    assert "not the state given" in assert_problem(wrong_state, 422, "VALIDATION_FAILED")["detail"]
    assert_problem(
        await client.put(
            "/v1/billing-details", json={**BUYER, "state": "XX"}, headers=owner_headers(tenant["id"])
        ),
        422,
        "VALIDATION_FAILED",
    )
    assert_problem(
        await client.put("/v1/billing-details", json=BUYER, headers=member_headers(tenant["id"])),
        403,
        "FORBIDDEN",
    )
    vat = {"legal_name": "Beispiel GmbH", "city": "Berlin", "country": "DEU", "tax_id": "123 456 789"}
    by_admin = await client.put(
        f"/v1/admin/tenants/{tenant['id']}/billing-details", json=vat, headers=admin_headers
    )
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["tax_id"] == "DE123456789"
    assert by_admin.json()["updated_by"] == "user:admin-1"
    read = await client.get(f"/v1/admin/tenants/{tenant['id']}/billing-details", headers=admin_headers)
    assert read.json() == by_admin.json()
    assert_problem(
        await client.get("/v1/admin/tenants/t-nobody/billing-details", headers=admin_headers),
        404,
        "NOT_FOUND",
    )


async def test_statements_of_months_not_ended_or_before_the_tenant_are_refused(
    issuer: Issuer, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    client = issuer.client
    tenant = await create_tenant()
    headers = owner_headers(tenant["id"])
    this_month = datetime.now(UTC).strftime("%Y-%m")
    assert_problem(
        await client.get(f"/v1/statements/{this_month}.pdf", headers=headers), 409, "PERIOD_NOT_ENDED"
    )
    assert_problem(await client.get("/v1/statements/2021-03", headers=headers), 404, "NOT_FOUND")
    assert_problem(await client.get("/v1/statements/2026-13.pdf", headers=headers), 422, "VALIDATION_FAILED")
    assert_problem(
        await client.get(f"/v1/admin/tenants/{tenant['id']}/statements/{this_month}", headers=admin_headers),
        409,
        "PERIOD_NOT_ENDED",
    )
    listed = await client.get("/v1/statements", headers=headers)
    assert listed.status_code == 200
    assert listed.json() == {"data": [], "next_cursor": None}
    assert_problem(
        await client.get("/v1/invoices", params={"cursor": "bm9wZQ"}, headers=headers),
        422,
        "VALIDATION_FAILED",
    )


async def test_a_busy_months_statement_equals_the_ledger_to_the_minor_unit(
    issuer: Issuer, create_tenant: TenantFactory, razorpay: FakeRazorpay, admin_headers: dict[str, str]
) -> None:
    client = issuer.client
    tenant = await create_tenant(balance=1_000_001)  # an admin credit first
    tenant_id = tenant["id"]
    first, _ = await paid_topup(client, razorpay, tenant_id, 250_000)
    await paid_topup(client, razorpay, tenant_id, 99_999)
    key = await usage_key(client, admin_headers, tenant_id)
    charges = []
    for i in range(30):
        body = {"kind": "call", "reference_id": ref("call"), "duration_seconds": 17 + i * 13}
        if i % 3 == 0:
            body = {"kind": "sms", "reference_id": ref("sms"), "quantity": 1 + i % 4}
        answer = await client.post("/v1/usage", json=body, headers=key)
        assert answer.status_code in (200, 201), answer.text
        charges.append(answer.json())
    call = next(c for c in charges if c.get("kind") == "call" and c["amount"]["amount"] > 0)
    refund = await client.post(
        f"/v1/admin/charges/{call['id']}/refunds",
        json={"amount": 1, "reason": "dropped"},
        headers=admin_headers,
    )
    assert refund.status_code == 201, refund.text
    refunded = await client.post(
        f"/v1/admin/topups/{first['id']}/refunds",
        json={"amount": 12_345, "reason": "partial"},
        headers=admin_headers,
    )
    assert refunded.status_code == 201, refunded.text
    debit = await client.post(
        f"/v1/admin/tenants/{tenant_id}/adjustments",
        json={"amount": -777, "reason": "fee"},
        headers=admin_headers,
    )
    assert debit.status_code == 201, debit.text

    rows = await ledger(client, tenant_id)
    async with issuer.db.sessionmaker() as session:
        figures = await statement_figures(
            session, tenant_id, datetime(2000, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
        )
    wallet = await wallet_of(client, admin_headers, tenant_id)
    # Both sums: the statement's lines, and the ledger's rows, equal the balance exactly.
    assert figures.opening == 0
    assert figures.closing == sum(r["amount"]["amount"] for r in rows) == wallet["balance"]["amount"]
    assert sum(line.amount for line in figures.lines) == figures.closing - figures.opening
    by_label = {line.description: line.amount for line in figures.lines}
    by_type: dict[str, int] = {}
    for r in rows:
        by_type[r["type"]] = by_type.get(r["type"], 0) + r["amount"]["amount"]
    assert by_label["Top-ups"] == by_type["topup"] == 349_999
    assert by_label["Top-up refunds"] == by_type["topup_refund"] == -12_345
    assert by_label["Charge refunds"] == by_type["usage_refund"] == 1
    assert (
        by_label["Adjustments (credits)"] + by_label["Adjustments (debits)"]
        == by_type["adjustment"]
        == 999_224
    )
    usage = sum(v for k, v in by_label.items() if k.startswith("Usage:"))
    assert usage == by_type["usage_charge"] < 0
    calls = [c for c in charges if c.get("kind") == "call"]
    assert figures.usage["call"]["records"] == len(calls) == 20
    assert figures.usage["call"]["seconds"] == sum(17 + i * 13 for i in range(30) if i % 3)
    note = next(line.note for line in figures.lines if line.description == "Usage: Calls")
    assert note is not None
    assert note.startswith("20 calls, ")


async def test_the_worker_issues_last_months_statement_once(
    issuer: Issuer, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    client = issuer.client
    tenant = await create_tenant()
    async with issuer.db.engine.begin() as conn:  # opened long ago: last month is one of its months
        await conn.execute(
            text("UPDATE tenants SET created_at = '2020-01-01T00:00:00Z' WHERE id = :t"), {"t": tenant["id"]}
        )
    now = datetime.now(UTC)
    last_month = Period.of(now).previous()
    if now < last_month.end + timedelta(seconds=900):
        pytest.skip("last month ended less than STATEMENT_DELAY_SECONDS ago: its statements wait")
    run = await issue_due_statements(issuer.db, now=now)
    assert run.period == str(last_month)
    assert run.issued >= 1
    assert run.failed == 0
    listed = (await client.get("/v1/statements", headers=owner_headers(tenant["id"]))).json()["data"]
    assert [s["period"] for s in listed] == [str(last_month)]
    assert listed[0]["statement"]["closing_balance"] == {"amount": 0, "currency": "INR"}
    again = await issue_due_statements(issuer.db, now=now)
    listed_again = (await client.get("/v1/statements", headers=owner_headers(tenant["id"]))).json()["data"]
    assert [s["id"] for s in listed_again] == [listed[0]["id"]]
    assert again.failed == 0
    pdf = await client.get(f"/v1/statements/{last_month}.pdf", headers=owner_headers(tenant["id"]))
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-disposition"] == f'attachment; filename="{listed[0]["number"]}.pdf"'
    assert "Statement of account" in pdf_text(pdf.content)
    by_admin = await client.get(
        f"/v1/admin/tenants/{tenant['id']}/statements/{last_month}", headers=admin_headers
    )
    assert by_admin.json()["id"] == listed[0]["id"]
