"""Auto top-up through Stripe: saved cards, settings, the runner (success, decline back-off and switch-off,
3-D Secure, caps, the runaway guard, a provider outage) and exactly-once crediting. Stripe is faked only at
its HTTP boundary (respx); the worker's job is run as the worker runs it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.auto_topup import (
    DECLINES,
    WANTS_3DS,
    FakeStripeCards,
    attempts_of,
    cancel_unstarted,
    end_pause,
    put_auto_topup,
    queued_runs,
    run_created,
    save_card,
)
from tests.fixtures.events import event_types, stored_events
from tests.fixtures.stripe_fake import FakeStripe, balance_of, fake_stripe, send_event
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ref, usage_key
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.auto_topup import AutoTopupStatus
from walletsvc.domain.errors import ProviderUnavailable
from walletsvc.services.auto_topup import resume_stale


@pytest.fixture(autouse=True)
async def _no_attempt_left_behind(db: Database) -> AsyncIterator[None]:
    yield
    await cancel_unstarted(db)


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


@pytest.fixture
def cards(stripe: FakeStripe) -> FakeStripeCards:
    return FakeStripeCards(stripe)


@pytest.fixture
async def tenant(create_tenant: TenantFactory) -> str:
    created: dict[str, Any] = await create_tenant(currency="USD", country="USA", balance=300)
    return str(created["id"])


def _auto_types(types: list[str]) -> list[str]:
    return [t for t in types if t.startswith("auto_topup.")]


# --- saved payment methods ----------------------------------------------------------------------------


async def test_a_retried_setup_with_the_same_key_answers_the_same_setup_intent_at_once(
    client: httpx.AsyncClient, cards: FakeStripeCards, tenant: str
) -> None:
    """The setup answer carries a client secret, so it is never stored: the key is freed once the intent
    is committed, and a retry resumes the same SetupIntent at once (not 409 while the claim runs out)."""
    headers = {**owner_headers(tenant), "Idempotency-Key": "setup-retry-1"}
    first = await client.post("/v1/payment-methods/setup", headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/payment-methods/setup", headers=headers)
    assert again.status_code == 201, again.text
    assert again.json()["setup_intent_id"] == first.json()["setup_intent_id"]
    assert again.json()["client_secret"] == first.json()["client_secret"]
    assert len({c.request.headers["Idempotency-Key"] for c in cards.create_setup.calls}) == 1


async def test_a_card_saved_through_elements_is_listed_with_brand_last4_and_expiry_only(
    client: httpx.AsyncClient, cards: FakeStripeCards, tenant: str
) -> None:
    started = await client.post("/v1/payment-methods/setup", headers=owner_headers(tenant))
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["client_secret"].startswith(body["setup_intent_id"])
    assert body["publishable_key"].startswith("pk_")
    assert started.headers["cache-control"] == "no-store"
    assert cards.create_setup.calls.last.request.headers["Idempotency-Key"].startswith("walletsvc:setup:")

    pm_id = await save_card(client, cards, tenant, brand="mastercard", last4="4444")
    listed = await client.get("/v1/payment-methods", headers=member_headers(tenant))
    assert listed.status_code == 200, listed.text
    (method,) = listed.json()["data"]
    assert method == {
        "id": pm_id,
        "provider": "stripe",
        "kind": "card",
        "brand": "mastercard",
        "last4": "4444",
        "exp_month": 12,
        "exp_year": 2034,
        "vpa": None,
        "max_amount": None,
        "expires_at": None,
        "status": "active",
        "status_reason": None,
        "default": True,
        "created_at": method["created_at"],
    }
    assert "fingerprint" not in listed.text
    assert "Jenny" not in listed.text

    second = await save_card(client, cards, tenant, last4="1881")
    chosen = await client.put(f"/v1/payment-methods/{second}/default", headers=owner_headers(tenant))
    assert chosen.status_code == 200
    assert chosen.json()["default"] is True
    defaults = {
        m["id"]: m["default"]
        for m in (await client.get("/v1/payment-methods", headers=owner_headers(tenant))).json()["data"]
    }
    assert defaults == {pm_id: False, second: True}

    assert (
        await client.delete(f"/v1/payment-methods/{second}", headers=member_headers(tenant))
    ).status_code == 403
    deleted = await client.delete(f"/v1/payment-methods/{second}", headers=owner_headers(tenant))
    assert deleted.status_code == 204, deleted.text
    assert cards.detached == [second]
    left = (await client.get("/v1/payment-methods", headers=owner_headers(tenant))).json()["data"]
    assert [(m["id"], m["default"]) for m in left] == [(pm_id, True)]  # the other one is the default now
    again = await client.delete(f"/v1/payment-methods/{second}", headers=owner_headers(tenant))
    assert again.status_code == 404
    assert again.json()["code"] == "NOT_FOUND"


async def test_a_detached_webhook_forgets_the_card(
    client: httpx.AsyncClient, cards: FakeStripeCards, tenant: str
) -> None:
    pm_id = await save_card(client, cards, tenant)
    sent = await send_event(
        client, "payment_method.detached", {"id": pm_id, "object": "payment_method", "customer": None}
    )
    assert sent.status_code in (200, 202)
    assert (await client.get("/v1/payment-methods", headers=owner_headers(tenant))).json()["data"] == []


# --- settings -------------------------------------------------------------------------------------------


async def test_settings_are_validated_with_stable_codes(
    client: httpx.AsyncClient, cards: FakeStripeCards, tenant: str, admin_headers: dict[str, str]
) -> None:
    no_card = await put_auto_topup(client, tenant, enabled=True, threshold=500, amount=2000)
    assert no_card.status_code == 422
    assert no_card.json()["code"] == "NO_PAYMENT_METHOD"
    await save_card(client, cards, tenant)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"enabled": True, "threshold": 500, "amount": 100}, "BELOW_MINIMUM"),
        ({"enabled": True, "threshold": 500, "amount": 2000, "target_balance": 3000}, "VALIDATION_FAILED"),
        ({"enabled": True, "threshold": 5000, "target_balance": 3000}, "VALIDATION_FAILED"),
        ({"enabled": True, "threshold": 500}, "VALIDATION_FAILED"),
        ({"enabled": True, "threshold": 500, "amount": 2000, "max_per_day": 0}, "VALIDATION_FAILED"),
        ({"enabled": True, "threshold": 500, "amount": 2000, "monthly_cap": 1000}, "VALIDATION_FAILED"),
        ({"enabled": True, "threshold": 500, "amount": 2000.5}, "VALIDATION_FAILED"),
        ({"enabled": True, "threshold": 500, "amount": "2000"}, "VALIDATION_FAILED"),
        ({"enabled": True, "threshold": 500, "amount": 2000, "currency": "EUR"}, "CURRENCY_MISMATCH"),
        (
            {"enabled": True, "threshold": 500, "amount": 2000, "payment_method_id": "pm_unknown"},
            "NO_PAYMENT_METHOD",
        ),
        ({"enabled": True, "threshold": 500, "amount": 10**9}, "ABOVE_MAXIMUM"),
    ]
    for body, code in cases:
        refused = await put_auto_topup(client, tenant, **body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["code"] == code, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")

    member = await client.put("/v1/auto-topup", json={"enabled": False}, headers=member_headers(tenant))
    assert member.status_code == 403
    saved = await put_auto_topup(
        client, tenant, enabled=False, threshold=500, target_balance=5000, monthly_cap=20000
    )
    assert saved.status_code == 200, saved.text
    shown = (await client.get("/v1/auto-topup", headers=member_headers(tenant))).json()
    assert shown["threshold"] == {"amount": 500, "currency": "USD"}
    assert shown["target_balance"] == {"amount": 5000, "currency": "USD"}
    assert shown["amount"] is None
    assert shown["max_per_day"] == 2
    assert shown["monthly_cap"] == {"amount": 20000, "currency": "USD"}
    assert shown["enabled"] is False
    assert shown["active"] is False

    locked = await client.put(
        f"/v1/admin/tenants/{tenant}/auto-topup",
        json={"locked": True, "locked_reason": "chargebacks"},
        headers=admin_headers,
    )
    assert locked.status_code == 200
    assert locked.json()["locked"] is True
    refused = await put_auto_topup(client, tenant, enabled=True)
    assert refused.status_code == 409
    assert refused.json()["code"] == "AUTO_TOPUP_LOCKED"
    assert "chargebacks" in refused.json()["detail"]
    unlocked = await client.put(
        f"/v1/admin/tenants/{tenant}/auto-topup", json={"locked": False}, headers=admin_headers
    )
    assert unlocked.status_code == 200
    on = await put_auto_topup(client, tenant, enabled=True, amount=2000)
    assert on.status_code == 200
    assert on.json()["active"] is True
    wallet = (await client.get("/v1/wallet", headers=owner_headers(tenant))).json()
    assert wallet["auto_topup"] == {
        "enabled": True,
        "threshold": {"amount": 500, "currency": "USD"},
        "amount": {"amount": 2000, "currency": "USD"},
    }


# --- the runner -----------------------------------------------------------------------------------------


async def test_below_the_threshold_one_auto_topup_charges_the_card_off_session_and_credits_once(
    client: httpx.AsyncClient, app: Any, db: Database, settings: Settings, cards: FakeStripeCards, tenant: str
) -> None:
    pm_id = await save_card(client, cards, tenant)
    enabled = await put_auto_topup(client, tenant, enabled=True, threshold=500, amount=2000)
    assert enabled.status_code == 200, enabled.text
    # The wallet (300) is below the threshold already: switching it on started one, and queued its job.
    assert enabled.json()["in_flight"]["status"] == "created"
    again = await put_auto_topup(client, tenant, threshold=600)
    assert again.status_code == 200
    assert len(await attempts_of(db, tenant)) == 1
    assert await queued_runs(db, tenant) == 1

    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.SUCCEEDED]
    (request,) = cards.off_session_requests
    (attempt,) = await attempts_of(db, tenant)
    assert request["_key"] == f"walletsvc:auto_topup:{attempt['id']}"
    assert (request["off_session"], request["confirm"], request["payment_method"]) == ("true", "true", pm_id)
    assert request["amount"] == "2000"
    assert request["customer"].startswith("cus_")
    assert await balance_of(client, tenant) == 2300

    # Stripe's own webhook for the same PaymentIntent arrives too: nothing more is credited.
    (intent,) = cards.intents_of(tenant)
    sent = await send_event(client, "payment_intent.succeeded", intent)
    assert sent.status_code in (200, 202)
    assert await balance_of(client, tenant) == 2300
    assert await run_created(db, app.state.gateways, settings, tenant) == []
    assert _auto_types(await event_types(db, tenant)) == ["auto_topup.succeeded"]
    detail = (
        await client.get(f"/v1/auto-topup/attempts/{attempt['id']}", headers=member_headers(tenant))
    ).json()
    assert detail["status"] == "succeeded"
    assert detail["amount"] == {"amount": 2000, "currency": "USD"}
    assert detail["topup_id"] == attempt["topup_id"]
    topup = (await client.get(f"/v1/topups/{attempt['topup_id']}", headers=owner_headers(tenant))).json()
    assert topup["status"] == "succeeded"


async def test_what_the_wallet_owes_is_added_to_the_amount(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    cards: FakeStripeCards,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
) -> None:
    tenant = str((await create_tenant(currency="USD", country="USA"))["id"])
    key = await usage_key(client, admin_headers, tenant)
    unpaid = await client.post(
        "/v1/usage", json={"kind": "sms", "reference_id": ref("sms"), "quantity": 40}, headers=key
    )
    assert unpaid.status_code == 402, unpaid.text
    owed = unpaid.json()["owed"]["amount"]
    assert owed > 0
    await save_card(client, cards, tenant)
    assert (await put_auto_topup(client, tenant, enabled=True, threshold=500, amount=2000)).status_code == 200
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.SUCCEEDED]
    assert cards.off_session_requests[0]["amount"] == str(2000 + owed)
    wallet = (await client.get("/v1/wallet", headers=owner_headers(tenant))).json()
    assert wallet["owed"]["amount"] == 0
    assert wallet["balance"]["amount"] == 2000  # the debt paid first, the wallet still above the threshold


async def test_a_declined_card_backs_off_and_after_three_declines_auto_topup_is_off(
    client: httpx.AsyncClient, app: Any, db: Database, settings: Settings, cards: FakeStripeCards, tenant: str
) -> None:
    await save_card(client, cards, tenant, outcome=DECLINES)
    assert (await put_auto_topup(client, tenant, enabled=True, threshold=500, amount=2000)).status_code == 200
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.FAILED]
    state = (await client.get("/v1/auto-topup", headers=owner_headers(tenant))).json()
    assert state["consecutive_failures"] == 1
    assert state["paused_until"] is not None
    assert state["active"] is True
    failed = [e for e in await stored_events(db, tenant) if e["type"] == "auto_topup.failed"]
    assert failed[0]["payload"]["reason"] == "Your card has insufficient funds."
    assert failed[0]["payload"]["code"] == "insufficient_funds"

    # During the back-off a balance change starts nothing (no loop).
    assert (await put_auto_topup(client, tenant, threshold=550)).status_code == 200
    assert len(await attempts_of(db, tenant)) == 1

    for expected in (2, 3):
        await end_pause(db, tenant)
        assert (await put_auto_topup(client, tenant, threshold=500 + expected)).status_code == 200
        assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.FAILED]
        assert (await client.get("/v1/auto-topup", headers=owner_headers(tenant))).json()[
            "consecutive_failures"
        ] == expected

    state = (await client.get("/v1/auto-topup", headers=owner_headers(tenant))).json()
    assert state["active"] is False
    assert state["disabled_reason"] == "consecutive_failures"
    assert (await client.get("/v1/wallet", headers=owner_headers(tenant))).json()["auto_topup"][
        "enabled"
    ] is False
    await end_pause(db, tenant)
    assert (await put_auto_topup(client, tenant, threshold=509)).status_code == 200
    assert len(cards.off_session_requests) == 3
    assert len(await attempts_of(db, tenant)) == 3
    assert _auto_types(await event_types(db, tenant)) == [
        "auto_topup.failed",
        "auto_topup.failed",
        "auto_topup.failed",
        "auto_topup.disabled",
    ]
    assert await balance_of(client, tenant) == 300

    # A newly saved card lifts the switch-off; the next one runs on it.
    await save_card(client, cards, tenant)
    state = (await client.get("/v1/auto-topup", headers=owner_headers(tenant))).json()
    assert state["active"] is True
    assert state["consecutive_failures"] == 0


async def test_a_3d_secure_card_waits_for_the_customer_and_confirming_credits_once(
    client: httpx.AsyncClient, app: Any, db: Database, settings: Settings, cards: FakeStripeCards, tenant: str
) -> None:
    await save_card(client, cards, tenant, outcome=WANTS_3DS)
    assert (await put_auto_topup(client, tenant, enabled=True, threshold=500, amount=2000)).status_code == 200
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.REQUIRES_ACTION]
    (attempt,) = await attempts_of(db, tenant)
    (intent,) = cards.intents_of(tenant)
    # Stripe's payment_failed webhook for the authentication_required attempt is not a decline.
    sent = await send_event(client, "payment_intent.payment_failed", intent)
    assert sent.status_code in (200, 202)
    waiting = (await client.get("/v1/auto-topup", headers=owner_headers(tenant))).json()["in_flight"]
    assert waiting["status"] == "requires_action"
    assert f"auto_topup_id={attempt['id']}" in waiting["action_url"]
    events = [e for e in await stored_events(db, tenant) if e["type"].startswith("auto_topup.")]
    assert [e["type"] for e in events] == ["auto_topup.requires_action"]
    assert events[0]["payload"]["action_url"] == waiting["action_url"]

    # No retry, and no second auto top-up while it waits, whatever happens to the balance.
    assert await run_created(db, app.state.gateways, settings, tenant) == []
    assert (await put_auto_topup(client, tenant, threshold=700)).status_code == 200
    assert len(await attempts_of(db, tenant)) == 1
    assert len(cards.off_session_requests) == 1

    confirm = await client.post(
        f"/v1/auto-topup/attempts/{attempt['id']}/confirmation", headers=owner_headers(tenant)
    )
    assert confirm.status_code == 200, confirm.text
    assert confirm.json()["client_secret"] == intent["client_secret"]
    assert confirm.headers["cache-control"] == "no-store"

    # The customer confirms in the portal; Stripe says so.
    paid = cards.stripe.succeed_intent(intent["id"])
    for _ in range(2):
        sent = await send_event(client, "payment_intent.succeeded", paid)
        assert sent.status_code in (200, 202)
    assert await balance_of(client, tenant) == 2300
    (attempt,) = await attempts_of(db, tenant)
    assert attempt["status"] == "succeeded"
    assert _auto_types(await event_types(db, tenant)) == [
        "auto_topup.requires_action",
        "auto_topup.succeeded",
    ]
    done = await client.post(
        f"/v1/auto-topup/attempts/{attempt['id']}/confirmation", headers=owner_headers(tenant)
    )
    assert done.status_code == 409
    assert done.json()["code"] == "CONFLICT"


async def test_two_a_day_and_the_monthly_cap_hold_and_capped_is_said_once_a_day(
    client: httpx.AsyncClient, app: Any, db: Database, settings: Settings, cards: FakeStripeCards, tenant: str
) -> None:
    await save_card(client, cards, tenant)
    assert (
        await put_auto_topup(client, tenant, enabled=True, threshold=5000, amount=2000)
    ).status_code == 200
    for _ in range(2):
        assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.SUCCEEDED]
        await put_auto_topup(client, tenant, threshold=5000)  # still below: the next one starts
    assert await balance_of(client, tenant) == 4300
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.REFUSED]
    for _ in range(2):  # paused until tomorrow; and said once a day even when asked again
        await end_pause(db, tenant)
        await put_auto_topup(client, tenant, threshold=5000)
        assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.REFUSED]
    capped = [e for e in await stored_events(db, tenant) if e["type"] == "auto_topup.capped"]
    assert len(capped) == 1
    listed: list[str] = []
    cursor: str | None = None
    while True:  # the attempts, newest first, a page of 2 at a time
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/v1/auto-topup/attempts", params=params, headers=member_headers(tenant))
        ).json()
        listed += [a["status"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert listed == ["refused", "refused", "refused", "succeeded", "succeeded"]
    assert capped[0]["payload"]["cap"] == "max_per_day"
    assert len(cards.off_session_requests) == 2


async def test_the_monthly_cap_counts_succeeded_and_in_flight_auto_topups(
    client: httpx.AsyncClient, app: Any, db: Database, settings: Settings, cards: FakeStripeCards, tenant: str
) -> None:
    await save_card(client, cards, tenant)
    body = {"enabled": True, "threshold": 5000, "amount": 2000, "monthly_cap": 3000}
    assert (await put_auto_topup(client, tenant, **body)).status_code == 200
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.SUCCEEDED]
    await put_auto_topup(client, tenant, threshold=5000)
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.REFUSED]
    last = (await attempts_of(db, tenant))[-1]
    assert last["failure_code"] == "monthly_cap"
    assert len(cards.off_session_requests) == 1
    capped = [e for e in await stored_events(db, tenant) if e["type"] == "auto_topup.capped"]
    assert [e["payload"]["cap"] for e in capped] == ["monthly_cap"]
    assert await balance_of(client, tenant) == 2300


async def test_the_runaway_guard_refuses_more_than_the_hourly_limit_and_alerts(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    cards: FakeStripeCards,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await save_card(client, cards, tenant)
    assert (
        await put_auto_topup(client, tenant, enabled=True, threshold=100_000, amount=2000, max_per_day=24)
    ).status_code == 200
    for _ in range(settings.auto_topup_max_per_hour):
        assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.SUCCEEDED]
        await put_auto_topup(client, tenant, threshold=100_000)
    with caplog.at_level(logging.ERROR, logger="walletsvc.services.auto_topup"):
        assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.REFUSED]
    assert any("runaway guard" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert "auto_topup.runaway_guard" in await event_types(db, tenant)
    assert len(cards.off_session_requests) == settings.auto_topup_max_per_hour


async def test_a_stripe_outage_is_resumed_under_the_same_key_and_credits_once(
    client: httpx.AsyncClient, app: Any, db: Database, settings: Settings, cards: FakeStripeCards, tenant: str
) -> None:
    await save_card(client, cards, tenant)
    cards.failing = settings.provider_max_retries + 1  # the first call and every retry of the SDK
    assert (await put_auto_topup(client, tenant, enabled=True, threshold=500, amount=2000)).status_code == 200
    (attempt,) = await attempts_of(db, tenant)
    with pytest.raises(ProviderUnavailable):
        await run_created(db, app.state.gateways, settings, tenant)
    (attempt,) = await attempts_of(db, tenant)
    assert attempt["status"] == "processing"  # the intent is committed; the job runs again
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.SUCCEEDED]
    keys = {r["_key"] for r in cards.off_session_requests}
    assert keys == {f"walletsvc:auto_topup:{attempt['id']}"}
    assert len(cards.off_session_requests) >= 2
    assert len(cards.intents_of(tenant)) == 1
    assert await balance_of(client, tenant) == 2300


async def test_a_3d_secure_confirmation_the_bank_declines_ends_the_wait_as_a_failure(
    client: httpx.AsyncClient, app: Any, db: Database, settings: Settings, cards: FakeStripeCards, tenant: str
) -> None:
    await save_card(client, cards, tenant, outcome=WANTS_3DS)
    assert (await put_auto_topup(client, tenant, enabled=True, threshold=500, amount=2000)).status_code == 200
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.REQUIRES_ACTION]
    (intent,) = cards.intents_of(tenant)
    declined = {
        **intent,
        "last_payment_error": {
            "code": "card_declined",
            "decline_code": "do_not_honor",
            "message": "Your card was declined.",
            "type": "card_error",
        },
    }
    sent = await send_event(client, "payment_intent.payment_failed", declined)
    assert sent.status_code in (200, 202)
    (attempt,) = await attempts_of(db, tenant)
    assert attempt["status"] == "failed"
    assert attempt["failure_code"] == "declined"
    state = (await client.get("/v1/auto-topup", headers=owner_headers(tenant))).json()
    assert state["in_flight"] is None
    assert state["consecutive_failures"] == 1
    assert await balance_of(client, tenant) == 300


async def test_a_3d_secure_wait_nobody_confirms_is_canceled_after_the_timeout(
    client: httpx.AsyncClient, app: Any, db: Database, settings: Settings, cards: FakeStripeCards, tenant: str
) -> None:
    await save_card(client, cards, tenant, outcome=WANTS_3DS)
    assert (await put_auto_topup(client, tenant, enabled=True, threshold=500, amount=2000)).status_code == 200
    assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.REQUIRES_ACTION]
    await resume_stale(
        db, app.state.gateways, settings, policy=app.state.auto_topup_policy, older_than_seconds=3600
    )
    assert (await attempts_of(db, tenant))[0]["status"] == "requires_action"  # not yet: it may wait
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE auto_topups SET updated_at = updated_at - make_interval(secs => :s) WHERE tenant_id = :t"
            ),
            {"t": tenant, "s": settings.auto_topup_action_timeout_seconds + 60},
        )
    await resume_stale(
        db, app.state.gateways, settings, policy=app.state.auto_topup_policy, older_than_seconds=3600
    )
    (attempt,) = await attempts_of(db, tenant)
    assert attempt["status"] == "failed"
    assert attempt["failure_code"] == "action_timeout"
    assert cards.cancel.call_count == 1
    (intent,) = cards.intents_of(tenant)
    assert intent["status"] == "canceled"  # a late confirmation can no longer charge the card
    state = (await client.get("/v1/auto-topup", headers=owner_headers(tenant))).json()
    assert state["in_flight"] is None
    assert state["consecutive_failures"] == 1
