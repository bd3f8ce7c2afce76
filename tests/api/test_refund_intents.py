"""Provider intents: a refund holds its money on the wallet and is committed before the provider is
called; a retry of the same request (same Idempotency-Key) after a lost answer resumes the same refund
and the same top-up, so the provider never pays out twice and a client retry never opens a second
top-up. Amounts a provider reports wrongly are flagged for review and move no money."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.auth import owner_headers
from tests.fixtures.providers import razorpay_refund, rid
from tests.fixtures.razorpay_flow import (
    FakeRazorpay,
    balance,
    deliver,
    paid_topup,
    refund_event,
    topup_detail,
    transactions,
)
from tests.fixtures.stripe_fake import fake_stripe
from tests.fixtures.tenants import TenantFactory
from walletsvc.db.engine import Database
from walletsvc.services.ledger_verify import verify_ledger

pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")


class ProcessDied(RuntimeError):
    """Stands in for the server dying (or its database connection dropping) after the provider paid."""


async def ask_refund(
    client: httpx.AsyncClient, headers: dict[str, str], topup_id: str, amount: int | None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {"reason": "customer asked", **extra}
    if amount is not None:
        body["amount"] = amount
    return await client.post(f"/v1/admin/topups/{topup_id}/refunds", json=body, headers=headers)


async def usage_key(
    client: httpx.AsyncClient, admin_headers: dict[str, str], tenant_id: str
) -> dict[str, str]:
    created = await client.post(
        "/v1/admin/api-keys", json={"scopes": ["usage:write"], "tenant_id": tenant_id}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def wallet(client: httpx.AsyncClient, tenant_id: str) -> dict[str, Any]:
    response = await client.get("/v1/wallet", headers=owner_headers(tenant_id))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def broken_checks(db: Database) -> dict[str, list[dict[str, Any]]]:
    async with db.engine.connect() as conn:
        results, _ = await verify_ledger(conn)
    return {r.check.name: r.offending for r in results if not r.ok}


async def test_charge_during_the_refund_call_cannot_spend_the_refunded_money(
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    during: list[httpx.Response] = []
    seen_while_in_flight: list[dict[str, Any]] = []

    async def a_call_ends_while_razorpay_refunds(refund: dict[str, Any]) -> None:
        seen_while_in_flight.append(await wallet(client, tenant["id"]))
        # A 3-minute call at Rs 10 a minute: 3,000 paise, of which only 2,000 are not held for the refund.
        during.append(
            await client.post(
                "/v1/usage",
                json={
                    "kind": "call",
                    "reference_id": f"call-{uuid.uuid4().hex[:8]}",
                    "duration_seconds": 180,
                },
                headers=key,
            )
        )

    razorpay.on_refund = a_call_ends_while_razorpay_refunds
    answered = await ask_refund(client, admin_headers, topup["id"], 3_000)

    assert answered.status_code == 201, answered.text
    assert answered.json()["debited"] is True
    [in_flight] = seen_while_in_flight
    assert in_flight["reserved"]["amount"] == 3_000
    assert in_flight["available"]["amount"] == 2_000
    [charge] = during
    assert charge.status_code == 402, charge.text
    assert charge.json()["charged"]["amount"] == 2_000
    assert charge.json()["owed"]["amount"] == 1_000
    after = await wallet(client, tenant["id"])
    assert after["balance"]["amount"] == 0  # never below zero: 5,000 - 2,000 charged - 3,000 refunded
    assert after["reserved"]["amount"] == 0
    assert await broken_checks(db) == {}


async def test_refund_larger_than_what_is_available_is_refused_before_the_provider_hears_of_it(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    held_for_a_call = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": -3_000, "reason": "spent"},
        headers=admin_headers,
    )
    assert held_for_a_call.status_code == 201, held_for_a_call.text

    refused = await ask_refund(client, admin_headers, topup["id"], 3_000)

    assert refused.status_code == 402, refused.text
    assert refused.json()["code"] == "INSUFFICIENT_FUNDS"
    assert razorpay.refund_requests == []
    assert (await topup_detail(client, tenant["id"], topup["id"]))["refunds"] == []
    forced = await ask_refund(client, admin_headers, topup["id"], 3_000, force=True)
    assert forced.status_code == 201, forced.text
    assert await balance(client, tenant["id"]) == -1_000  # force: the money has left, the wallet owes it


async def test_refund_retried_after_the_first_attempt_died_pays_out_once(
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)

    async def die_after_razorpay_paid(refund: dict[str, Any]) -> None:
        raise ProcessDied("the answer never reached walletsvc's database")

    razorpay.on_refund = die_after_razorpay_paid
    headers = {**admin_headers, "Idempotency-Key": f"refund-{uuid.uuid4().hex}"}
    first = await ask_refund(client, headers, topup["id"], 2_000)
    assert first.status_code >= 500  # the first attempt's answer is lost
    [paid] = razorpay.refunds.values()
    assert await balance(client, tenant["id"]) == 5_000  # not debited yet...
    assert (await wallet(client, tenant["id"]))["reserved"]["amount"] == 2_000  # ...but held

    razorpay.on_refund = None
    retried = await ask_refund(client, headers, topup["id"], 2_000)

    assert retried.status_code == 201, retried.text
    assert len(razorpay.refunds) == 1  # the same X-Refund-Idempotency: Razorpay answered the first refund
    keys = {r.headers["X-Refund-Idempotency"] for r in razorpay.refund_requests}
    assert len(razorpay.refund_requests) == 2
    assert len(keys) == 1
    assert retried.json()["debited"] is True
    assert retried.json()["held"]["amount"] == 0
    assert [
        r["amount"]["amount"] for r in await transactions(client, tenant["id"], type_="topup_refund")
    ] == [-2_000]
    assert await balance(client, tenant["id"]) == 3_000
    assert (await wallet(client, tenant["id"]))["reserved"]["amount"] == 0
    replay = await ask_refund(client, headers, topup["id"], 2_000)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["id"] == retried.json()["id"] == paid["notes"]["walletsvc_refund_id"]
    assert await broken_checks(db) == {}


async def test_refund_retried_with_the_same_key_and_another_amount_is_refused(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    razorpay.down = True
    headers = {**admin_headers, "Idempotency-Key": f"refund-{uuid.uuid4().hex}"}
    unavailable = await ask_refund(client, headers, topup["id"], 2_000)
    assert unavailable.status_code == 503, unavailable.text
    razorpay.down = False

    other = await ask_refund(client, headers, topup["id"], 2_500)

    assert other.status_code == 422, other.text
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    resumed = await ask_refund(client, headers, topup["id"], 2_000)
    assert resumed.status_code == 201, resumed.text
    assert len(razorpay.refunds) == 1
    assert await balance(client, tenant["id"]) == 3_000


async def test_topup_retried_after_a_503_resumes_the_same_topup(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    headers = {**owner_headers(tenant["id"]), "Idempotency-Key": f"topup-{uuid.uuid4().hex}"}
    razorpay.down = True
    first = await client.post("/v1/topups", json={"amount": 50_000}, headers=headers)
    assert first.status_code == 503, first.text
    razorpay.down = False

    retried = await client.post("/v1/topups", json={"amount": 50_000}, headers=headers)
    changed = await client.post("/v1/topups", json={"amount": 60_000}, headers=headers)

    assert retried.status_code == 201, retried.text
    assert changed.status_code == 422, changed.text
    assert changed.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    listed = await client.get("/v1/topups", headers=owner_headers(tenant["id"]))
    assert [t["id"] for t in listed.json()["data"]] == [retried.json()["id"]]
    assert retried.json()["checkout"]["kind"] == "razorpay_modal"
    history = [e["kind"] for e in (await topup_detail(client, tenant["id"], retried.json()["id"]))["history"]]
    assert history[:2] == ["created", "checkout_failed"]
    assert "resumed" in history


async def test_provider_answering_another_amount_for_our_refund_flags_it_and_debits_nothing(
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)

    async def answer_another_amount(refund: dict[str, Any]) -> None:
        refund["amount"] = 1_500

    razorpay.on_refund = answer_another_amount
    asked = await ask_refund(client, admin_headers, topup["id"], 1_000)

    assert asked.status_code == 201, asked.text
    assert asked.json()["status"] == "flagged"
    assert asked.json()["debited"] is False
    assert asked.json()["held"]["amount"] == 1_000  # the money may have left: it stays held for review
    assert await balance(client, tenant["id"]) == 5_000
    assert (await wallet(client, tenant["id"]))["available"]["amount"] == 4_000
    history = [e["kind"] for e in (await topup_detail(client, tenant["id"], topup["id"]))["history"]]
    assert "refund_flagged" in history
    assert await transactions(client, tenant["id"], type_="topup_refund") == []
    assert await broken_checks(db) == {}


@pytest.mark.parametrize("reported", [10**30, 5_001, 0])
async def test_outside_refund_larger_than_the_topup_moves_no_money(
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    reported: int,
) -> None:
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 5_000)
    dashboard = razorpay_refund(
        refund_id=rid("rfnd"),
        payment_id=payment["id"],
        amount=reported,
        notes={},
        status="processed",
        currency="INR",
    )

    hook = await deliver(client, refund_event("refund.processed", dashboard, payment))

    assert hook.status_code < 500, hook.text
    assert await balance(client, tenant["id"]) == 5_000
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["refunds"] == []
    assert await transactions(client, tenant["id"], type_="topup_refund") == []
    assert await broken_checks(db) == {}


async def test_verify_reports_a_refund_that_was_not_forced_going_below_zero(
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    """The hold makes it impossible through the API; the check is there for whatever else might."""
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    spent = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": -3_000, "reason": "spent"},
        headers=admin_headers,
    )
    assert spent.status_code == 201, spent.text
    forced = await ask_refund(client, admin_headers, topup["id"], 3_000, force=True)
    assert forced.status_code == 201, forced.text
    assert await balance(client, tenant["id"]) == -1_000
    async with db.engine.connect() as conn:
        trial = await conn.begin()
        before, _ = await verify_ledger(conn, snapshot=False)
        await conn.execute(
            text("UPDATE topup_refunds SET forced = false WHERE tenant_id = :t AND id = :id"),
            {"t": tenant["id"], "id": forced.json()["id"]},
        )
        after, _ = await verify_ledger(conn, snapshot=False)
        await trial.rollback()
    assert {r.check.name for r in before if not r.ok} == set()
    assert {r.check.name for r in after if not r.ok} == {"negative_only_by_adjustment"}


async def test_client_secret_is_never_stored_and_a_retry_gets_the_same_one_from_stripe(
    db: Database, client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    headers = {**owner_headers(tenant["id"]), "Idempotency-Key": f"elements-{uuid.uuid4().hex}"}
    body = {"amount": 2_500, "checkout": "client_secret"}
    with fake_stripe() as stripe:
        first = await client.post("/v1/topups", json=body, headers=headers)
        retried = await client.post("/v1/topups", json=body, headers=headers)

    assert first.status_code == 201, first.text
    assert retried.status_code == 201, retried.text
    secret = first.json()["checkout"]["client_secret"]
    assert retried.json()["checkout"]["client_secret"] == secret
    assert retried.json()["id"] == first.json()["id"]
    assert len(stripe.intents) == 1
    async with db.engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM idempotency_keys WHERE position(:s in convert_from(COALESCE(response_body, ''), 'UTF8')) > 0"
                ),
                {"s": secret},
            )
        ).scalar_one()
    assert stored == 0
