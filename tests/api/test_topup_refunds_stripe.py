"""Refunds of Stripe top-ups: sent to Stripe with a deterministic Idempotency-Key, and debited from the
wallet exactly once whichever of Stripe's API answer and its webhooks (`refund.*`, `charge.refunded`)
comes first or comes again. Refunds made in Stripe's dashboard are recorded and debited once too."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import owner_headers
from tests.fixtures.providers import rid
from tests.fixtures.stripe_fake import (
    FakeStripe,
    balance_of,
    fake_stripe,
    form_of,
    ledger_rows,
    send_event,
    start_topup,
)
from tests.fixtures.tenants import TenantFactory


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


async def credited_topup(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, amount: int = 2500
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A USD tenant whose top-up Stripe confirmed by webhook: (tenant id, top-up, paid session)."""
    tenant = await create_tenant(currency="USD", country="USA")
    topup = await start_topup(client, tenant["id"], amount)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    hook = await send_event(client, "checkout.session.completed", session)
    assert hook.json()["outcome"] == "top-up succeeded", hook.text
    return tenant["id"], topup, session


async def refund(
    client: httpx.AsyncClient, headers: dict[str, str], topup_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/admin/topups/{topup_id}/refunds", json={"reason": "customer asked", **body}, headers=headers
    )


async def admin_topup(client: httpx.AsyncClient, headers: dict[str, str], topup_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/admin/topups/{topup_id}", headers=headers)
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail


async def refund_rows(client: httpx.AsyncClient, tenant_id: str) -> list[int]:
    return [r["amount"]["amount"] for r in await ledger_rows(client, tenant_id, "topup_refund")]


def stripe_refund_of(stripe: FakeStripe, refund_id: str) -> dict[str, Any]:
    found = [r for r in stripe.refunds.values() if r["metadata"].get("walletsvc_refund_id") == refund_id]
    assert len(found) == 1
    return {k: v for k, v in copy.deepcopy(found[0]).items() if not k.startswith("_")}


async def test_whole_refund_goes_to_stripe_with_its_idempotency_key_and_debits_once(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant_id, topup, session = await credited_topup(client, stripe, create_tenant)

    response = await refund(client, admin_headers, topup["id"])

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["amount"] == {"amount": 2500, "currency": "USD"}
    assert answer["status"] == "succeeded"
    assert answer["debited"] is True
    request = stripe.create_refund.calls.last.request
    form = form_of(request)
    assert form["payment_intent"] == session["payment_intent"]
    assert form["amount"] == "2500"
    assert form["metadata[walletsvc_refund_id]"] == answer["id"]
    assert form["metadata[topup_id]"] == topup["id"]
    assert request.headers["Idempotency-Key"] == f"walletsvc:refund:{answer['id']}"
    assert await balance_of(client, tenant_id) == 0
    assert await refund_rows(client, tenant_id) == [-2500]
    detail = await admin_topup(client, admin_headers, topup["id"])
    assert detail["refunded"] == {"amount": 2500, "currency": "USD"}
    assert [r["id"] for r in detail["refunds"]] == [answer["id"]]


async def test_partial_refunds_until_nothing_is_left(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant_id, topup, _ = await credited_topup(client, stripe, create_tenant)

    part = await refund(client, admin_headers, topup["id"], amount=1000)
    rest = await refund(client, admin_headers, topup["id"])
    one_more = await refund(client, admin_headers, topup["id"], amount=1)
    nothing = await refund(client, admin_headers, topup["id"])

    assert part.status_code == 201, part.text
    assert part.json()["amount"]["amount"] == 1000
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"]["amount"] == 1500
    assert one_more.status_code == 422, one_more.text
    assert nothing.status_code == 409, nothing.text
    assert nothing.json()["code"] == "CONFLICT"
    assert [form_of(c.request)["amount"] for c in stripe.create_refund.calls] == ["1000", "1500"]
    keys = {c.request.headers["Idempotency-Key"] for c in stripe.create_refund.calls}
    assert keys == {f"walletsvc:refund:{part.json()['id']}", f"walletsvc:refund:{rest.json()['id']}"}
    assert await balance_of(client, tenant_id) == 0
    assert sorted(await refund_rows(client, tenant_id)) == [-1500, -1000]


async def test_refund_webhooks_after_the_api_answer_change_nothing(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant_id, topup, session = await credited_topup(client, stripe, create_tenant)
    answer = (await refund(client, admin_headers, topup["id"], amount=1000)).json()
    at_stripe = stripe_refund_of(stripe, answer["id"])
    event_id = rid("evt")

    hooks = [
        await send_event(client, "refund.created", at_stripe),
        await send_event(client, "refund.updated", at_stripe, event_id=event_id),
        await send_event(client, "refund.updated", at_stripe, event_id=event_id),
        await send_event(
            client,
            "charge.refunded",
            stripe.charge_refunded(session["payment_intent"], amount=2500, amount_refunded=1000),
        ),
    ]

    assert [h.status_code for h in hooks] == [200] * 4
    assert hooks[2].json()["outcome"] == "duplicate"
    assert await balance_of(client, tenant_id) == 1500
    assert await refund_rows(client, tenant_id) == [-1000]
    detail = await admin_topup(client, admin_headers, topup["id"])
    assert detail["refunded"]["amount"] == 1000
    assert len(detail["refunds"]) == 1


def lost_answer(stripe: FakeStripe) -> None:
    """Stripe makes the refund, but its answer never reaches walletsvc (every attempt times out)."""

    def make_then_time_out(request: httpx.Request) -> httpx.Response:
        stripe._create_refund(request)
        raise httpx.ReadTimeout("timed out", request=request)

    stripe.create_refund.mock(side_effect=make_then_time_out)


@pytest.mark.parametrize("webhook", ["refund.updated", "charge.refunded"])
async def test_refund_whose_answer_was_lost_is_debited_once_by_its_webhook(
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    webhook: str,
) -> None:
    tenant_id, topup, session = await credited_topup(client, stripe, create_tenant)
    lost_answer(stripe)

    response = await refund(client, admin_headers, topup["id"], amount=1000)

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "PROVIDER_UNAVAILABLE"
    keys = {c.request.headers["Idempotency-Key"] for c in stripe.create_refund.calls}
    assert len(keys) == 1
    assert len(stripe.refunds) == 1  # Stripe made one refund of the retries
    pending = (await admin_topup(client, admin_headers, topup["id"]))["refunds"]
    assert [(r["status"], r["debited"]) for r in pending] == [("pending", False)]
    assert keys == {f"walletsvc:refund:{pending[0]['id']}"}
    assert await balance_of(client, tenant_id) == 2500

    if webhook == "refund.updated":
        obj = stripe_refund_of(stripe, pending[0]["id"])
    else:
        obj = stripe.charge_refunded(session["payment_intent"], amount=2500, amount_refunded=1000)
    first = await send_event(client, webhook, obj)
    again = await send_event(client, webhook, obj)

    assert first.status_code == again.status_code == 200
    assert await balance_of(client, tenant_id) == 1500
    assert await refund_rows(client, tenant_id) == [-1000]
    refunds = (await admin_topup(client, admin_headers, topup["id"]))["refunds"]
    assert [(r["id"], r["status"], r["debited"]) for r in refunds] == [(pending[0]["id"], "succeeded", True)]


async def test_refunding_more_than_the_wallet_holds_needs_force(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant_id, topup, _ = await credited_topup(client, stripe, create_tenant)
    spent = await client.post(
        f"/v1/admin/tenants/{tenant_id}/adjustments",
        json={"amount": -2000, "reason": "calls made with the top-up"},
        headers=admin_headers,
    )
    assert spent.status_code == 201, spent.text

    refused = await refund(client, admin_headers, topup["id"])
    assert refused.status_code == 402, refused.text
    assert refused.json()["code"] == "INSUFFICIENT_FUNDS"
    assert stripe.create_refund.call_count == 0
    assert await balance_of(client, tenant_id) == 500
    forced = await refund(client, admin_headers, topup["id"], force=True)

    assert forced.status_code == 201, forced.text
    assert forced.json()["forced"] is True
    assert stripe.create_refund.call_count == 1
    assert await balance_of(client, tenant_id) == -2000
    assert await refund_rows(client, tenant_id) == [-2500]


async def test_refunding_more_than_the_topup_is_refused(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant_id, topup, _ = await credited_topup(client, stripe, create_tenant)

    response = await refund(client, admin_headers, topup["id"], amount=2501, force=True)

    assert response.status_code == 422, response.text
    assert stripe.create_refund.call_count == 0
    assert await balance_of(client, tenant_id) == 2500


async def test_refund_of_a_pending_topup_is_a_conflict(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    topup = await start_topup(client, tenant["id"], 2500)

    response = await refund(client, admin_headers, topup["id"])

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "CONFLICT"
    assert stripe.create_refund.call_count == 0


async def test_tenant_owner_cannot_refund_a_topup(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    tenant_id, topup, _ = await credited_topup(client, stripe, create_tenant)

    response = await refund(client, owner_headers(tenant_id), topup["id"])

    assert response.status_code == 403, response.text
    assert stripe.create_refund.call_count == 0
    assert await balance_of(client, tenant_id) == 2500


def dashboard_refund(payment_intent: str, amount: int) -> dict[str, Any]:
    """A refund someone made in Stripe's dashboard: Stripe's own object, no walletsvc metadata."""
    return {
        "id": rid("re"),
        "object": "refund",
        "amount": amount,
        "charge": rid("ch"),
        "created": 1_760_000_000,
        "currency": "usd",
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": None,
        "status": "succeeded",
    }


async def test_dashboard_refund_reported_by_charge_refunded_is_debited_once(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant_id, topup, session = await credited_topup(client, stripe, create_tenant)
    charge = stripe.charge_refunded(session["payment_intent"], amount=2500, amount_refunded=1000)
    event_id = rid("evt")

    first = await send_event(client, "charge.refunded", charge, event_id=event_id)
    duplicate = await send_event(client, "charge.refunded", charge, event_id=event_id)
    redelivered = await send_event(client, "charge.refunded", charge)

    assert first.status_code == 200, first.text
    assert duplicate.json()["outcome"] == "duplicate"
    assert redelivered.status_code == 200, redelivered.text
    assert await balance_of(client, tenant_id) == 1500
    assert await refund_rows(client, tenant_id) == [-1000]
    detail = await admin_topup(client, admin_headers, topup["id"])
    assert detail["refunded"]["amount"] == 1000
    assert [(r["amount"]["amount"], r["status"], r["debited"]) for r in detail["refunds"]] == [
        (1000, "succeeded", True)
    ]
    assert stripe.create_refund.call_count == 0


@pytest.mark.parametrize("first", ["charge.refunded", "refund.created"])
async def test_dashboard_refund_reported_by_both_its_events_is_debited_once(
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    first: str,
) -> None:
    # Stripe sends `charge.refunded` and `refund.created` (then `refund.updated`) for one refund, in
    # any order; the charge names no refund id in recent API versions.
    tenant_id, topup, session = await credited_topup(client, stripe, create_tenant)
    at_stripe = dashboard_refund(session["payment_intent"], 1000)
    charge = stripe.charge_refunded(session["payment_intent"], amount=2500, amount_refunded=1000)
    charge["id"] = at_stripe["charge"]
    events = [("charge.refunded", charge), ("refund.created", at_stripe), ("refund.updated", at_stripe)]
    if first == "refund.created":
        events = [events[1], events[0], events[2]]

    answers = [await send_event(client, kind, obj) for kind, obj in events]

    assert [a.status_code for a in answers] == [200] * 3
    assert await balance_of(client, tenant_id) == 1500
    assert await refund_rows(client, tenant_id) == [-1000]
    detail = await admin_topup(client, admin_headers, topup["id"])
    assert detail["refunded"]["amount"] == 1000
    assert len(detail["refunds"]) == 1


@pytest.mark.parametrize("event_type", ["refund.failed", "refund.updated"])
async def test_refund_that_fails_at_stripe_is_credited_back(
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    event_type: str,
) -> None:
    tenant_id, topup, _ = await credited_topup(client, stripe, create_tenant)
    stripe.refund_status = "pending"
    answer = (await refund(client, admin_headers, topup["id"], amount=1000)).json()
    assert answer["status"] == "pending"
    assert await balance_of(client, tenant_id) == 1500
    failed = {
        **stripe_refund_of(stripe, answer["id"]),
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
    }

    first = await send_event(client, event_type, failed)
    again = await send_event(client, event_type, failed)

    assert first.status_code == again.status_code == 200
    assert await balance_of(client, tenant_id) == 2500
    assert sorted(await refund_rows(client, tenant_id)) == [-1000, 1000]
    detail = await admin_topup(client, admin_headers, topup["id"])
    assert detail["refunded"]["amount"] == 0
    assert [(r["status"], r["failure_reason"] is not None) for r in detail["refunds"]] == [("failed", True)]
