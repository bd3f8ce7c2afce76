"""Auto top-up for INR tenants (Razorpay): with no mandate, one payment link to the billing contacts,
credited once when it is paid (webhook or reconcile), never a second link for the same auto top-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import owner_headers
from tests.fixtures.auto_topup import (
    FakePaymentLinks,
    attempts_of,
    cancel_unstarted,
    payment_link_event,
    put_auto_topup,
    run_created,
)
from tests.fixtures.events import stored_events
from tests.fixtures.razorpay_flow import FakeRazorpay, balance, deliver
from tests.fixtures.tenants import TenantFactory
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.auto_topup import AutoTopupStatus
from walletsvc.services.reconcile import reconcile


@pytest.fixture(autouse=True)
async def _no_attempt_left_behind(db: Database) -> AsyncIterator[None]:
    yield
    await cancel_unstarted(db)


@pytest.fixture
def links(razorpay: FakeRazorpay) -> FakePaymentLinks:
    return FakePaymentLinks(razorpay)


@pytest.fixture
async def inr_tenant(create_tenant: TenantFactory, client: httpx.AsyncClient) -> str:
    tenant = str((await create_tenant(currency="INR", country="IND", balance=20_000))["id"])
    contacts = await client.put(
        "/v1/billing-contacts",
        json={"emails": ["billing@acme.example", "cfo@acme.example"]},
        headers=owner_headers(tenant),
    )
    assert contacts.status_code == 200, contacts.text
    return tenant


async def test_an_inr_tenant_without_a_mandate_gets_one_payment_link_and_is_credited_once(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    links: FakePaymentLinks,
    inr_tenant: str,
) -> None:
    enabled = await put_auto_topup(client, inr_tenant, enabled=True, threshold=50_000, amount=100_000)
    assert enabled.status_code == 200, enabled.text  # no card needed: the fallback is a payment link
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [
        AutoTopupStatus.REQUIRES_ACTION
    ]
    (request,) = links.create_requests
    (attempt,) = await attempts_of(db, inr_tenant)
    assert request["amount"] == 100_000
    assert request["currency"] == "INR"
    assert request["reference_id"] == attempt["topup_id"]
    assert request["customer"]["email"] == "billing@acme.example"
    assert request["notify"]["email"] is True
    (link,) = links.links.values()
    sent = [e for e in await stored_events(db, inr_tenant) if e["type"] == "auto_topup.payment_link_sent"]
    assert len(sent) == 1
    assert sent[0]["payload"]["url"] == link["short_url"]
    assert sent[0]["payload"]["recipients"] == ["billing@acme.example", "cfo@acme.example"]
    assert sent[0]["payload"]["amount"] == {"amount": 100_000, "currency": "INR"}

    # While the link waits, no other auto top-up starts, and running the job again sends nothing.
    assert (await put_auto_topup(client, inr_tenant, threshold=60_000)).status_code == 200
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == []
    assert len(await attempts_of(db, inr_tenant)) == 1
    assert len(links.create_requests) == 1

    paid_link, payment = links.pay(link["id"])
    for _ in range(2):  # Razorpay retries a webhook; it counts once
        answer = await deliver(client, payment_link_event("payment_link.paid", paid_link, payment))
        assert answer.status_code == 200, answer.text
    # reads the paid link: nothing more
    await reconcile(db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy)
    assert await balance(client, inr_tenant) == 120_000
    (attempt,) = await attempts_of(db, inr_tenant)
    assert attempt["status"] == "succeeded"
    types = [e["type"] for e in await stored_events(db, inr_tenant) if e["type"].startswith("auto_topup.")]
    assert types == ["auto_topup.payment_link_sent", "auto_topup.succeeded"]


async def test_a_paid_link_whose_webhook_was_lost_is_credited_by_reconcile(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    links: FakePaymentLinks,
    inr_tenant: str,
) -> None:
    assert (
        await put_auto_topup(client, inr_tenant, enabled=True, threshold=50_000, amount=100_000)
    ).status_code == 200
    await run_created(db, app.state.gateways, settings, inr_tenant)
    (link,) = links.links.values()
    links.pay(link["id"])
    first = await reconcile(
        db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy, settings=settings
    )
    second = await reconcile(
        db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy, settings=settings
    )
    assert first.credited >= 1
    assert second.errors == []
    assert await balance(client, inr_tenant) == 120_000
    assert (await attempts_of(db, inr_tenant))[0]["status"] == "succeeded"


async def test_a_link_whose_answer_was_lost_is_found_again_never_sent_twice(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    links: FakePaymentLinks,
    inr_tenant: str,
) -> None:
    links.lose_next_answer = True
    assert (
        await put_auto_topup(client, inr_tenant, enabled=True, threshold=50_000, amount=100_000)
    ).status_code == 200
    # Razorpay made the link but its answer was lost; the retry is refused (reference_id taken) and the
    # first link is found by its reference_id instead.
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [
        AutoTopupStatus.REQUIRES_ACTION
    ]
    assert len(links.create_requests) == 2
    assert len(links.links) == 1
    sent = [e for e in await stored_events(db, inr_tenant) if e["type"] == "auto_topup.payment_link_sent"]
    assert len(sent) == 1
    (link,) = links.links.values()
    paid_link, payment = links.pay(link["id"])
    answer = await deliver(client, payment_link_event("payment_link.paid", paid_link, payment))
    assert answer.status_code == 200, answer.text
    assert await balance(client, inr_tenant) == 120_000


async def test_an_expired_link_ends_the_auto_topup_and_backs_off(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    links: FakePaymentLinks,
    inr_tenant: str,
) -> None:
    assert (
        await put_auto_topup(client, inr_tenant, enabled=True, threshold=50_000, amount=100_000)
    ).status_code == 200
    await run_created(db, app.state.gateways, settings, inr_tenant)
    (link,) = links.links.values()
    link["status"] = "expired"
    answer = await deliver(client, payment_link_event("payment_link.expired", link))
    assert answer.status_code == 200, answer.text
    (attempt,) = await attempts_of(db, inr_tenant)
    assert attempt["status"] == "failed"
    assert attempt["failure_code"] == "payment_link_expired"
    state = (await client.get("/v1/auto-topup", headers=owner_headers(inr_tenant))).json()
    assert state["consecutive_failures"] == 1
    assert state["paused_until"] is not None
    assert await balance(client, inr_tenant) == 20_000
