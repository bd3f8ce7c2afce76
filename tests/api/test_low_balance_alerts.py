"""Low-balance alerts and charge.insufficient_funds: recorded in the transaction that moved the money, by
every path that changes the available balance, once per low spell and at most once a day per tenant."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.events import stored_events
from tests.fixtures.low_balance import LOW, RESOLVED, SHORT, UsdWallet, alerts
from tests.fixtures.problems import assert_problem
from tests.fixtures.razorpay_flow import FakeRazorpay, isolated_client, paid_topup
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ref, usd
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.rating import UsageKind
from walletsvc.services.calls import expire_holds
from walletsvc.services.charging import ChargeWriter, UsageRecord

# USD without a plan: an SMS is 2 cents, a call 5 cents a minute plus a 10 cent connection fee, and a
# call's default hold covers 300 s: 35 cents.


@pytest.fixture
def open_wallet(
    client: httpx.AsyncClient, db: Database, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> Callable[[int, int], Awaitable[UsdWallet]]:
    """Opens a USD tenant with this balance and low-balance threshold, and its telephony key."""

    async def _open(balance: int, threshold: int) -> UsdWallet:
        return await UsdWallet.open(
            client, db, create_tenant, admin_headers, balance=balance, threshold=threshold
        )

    return _open


@pytest.fixture
async def usd_wallet(open_wallet: Callable[[int, int], Awaitable[UsdWallet]]) -> UsdWallet:
    """A USD tenant with $10.00 and a $5.00 threshold, and its telephony key."""
    return await open_wallet(1_000, 500)


@pytest.fixture
async def held_call(open_wallet: Callable[[int, int], Awaitable[UsdWallet]]) -> tuple[UsdWallet, str]:
    """A USD tenant with $5.20 and a $5.00 threshold, and a call authorized on it: the call's 35 cent hold
    takes the available balance to 485, under the threshold."""
    wallet = await open_wallet(520, 500)
    call_id = ref("call")
    authorized = await wallet.client.post(f"/v1/calls/{call_id}/authorize", json={}, headers=wallet.key)
    assert authorized.status_code == 200, authorized.text
    assert authorized.json()["hold"] == usd(35)
    return wallet, call_id


async def test_a_charge_crossing_the_threshold_records_one_low_balance_event(usd_wallet: UsdWallet) -> None:
    await usd_wallet.sms(200)  # 1,000 -> 600: still over 500
    assert await usd_wallet.alerts() == []
    crossing = await usd_wallet.sms(100)  # 600 -> 400
    await usd_wallet.sms(50)  # 400 -> 300: lower still, said once already
    [event] = await usd_wallet.alerts()
    assert event["type"] == LOW
    payload = event["payload"]
    assert payload["available"] == usd(400)
    assert payload["balance"] == usd(400)
    assert payload["reserved"] == usd(0)
    assert payload["threshold"] == usd(500)
    assert payload["cause"] == {"type": "charge", "id": crossing["id"]}
    assert payload["low_since"] is not None
    assert event["delivery"] == "pending"  # its delivery job was queued with it


async def test_a_batch_crossing_names_the_charge_that_crossed(usd_wallet: UsdWallet) -> None:
    records = [{"kind": "sms", "reference_id": ref("sms"), "quantity": 100} for _ in range(5)]
    response = await usd_wallet.client.post(
        "/v1/usage/batch", json={"records": records}, headers=usd_wallet.key
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201] * 5
    # 1,000 -> 800 -> 600 -> 400: the third charge crossed 500.
    [event] = await usd_wallet.alerts()
    assert event["payload"]["cause"] == {"type": "charge", "id": results[2]["charge"]["id"]}
    assert event["payload"]["available"] == usd(400)


async def test_a_hold_crossing_alerts_and_its_settled_call_resolves(held_call: tuple[UsdWallet, str]) -> None:
    wallet, call_id = held_call
    [low] = await wallet.alerts()
    assert low["payload"]["cause"] == {"type": "hold", "id": call_id}
    assert low["payload"]["reserved"] == usd(35)
    assert low["payload"]["available"] == usd(485)
    # A 1-second call costs 15 cents; its 35 cent hold is released: available 505, over the threshold.
    hung_up = await wallet.client.post(
        "/v1/usage", json={"kind": "call", "reference_id": call_id, "duration_seconds": 1}, headers=wallet.key
    )
    assert hung_up.status_code == 201, hung_up.text
    events = await wallet.alerts()
    assert [e["type"] for e in events] == [LOW, RESOLVED]
    resolved = events[1]["payload"]
    assert resolved["cause"] == {"type": "charge", "id": hung_up.json()["id"]}
    assert resolved["available"] == usd(505)
    assert resolved["low_since"] == low["payload"]["low_since"]


async def test_an_adjustment_down_alerts_and_one_up_resolves(usd_wallet: UsdWallet) -> None:
    down = await usd_wallet.adjust(-700)
    up = await usd_wallet.adjust(300)  # 300 -> 600
    low, resolved = await usd_wallet.alerts()
    assert (low["type"], resolved["type"]) == (LOW, RESOLVED)
    assert low["payload"]["cause"] == {"type": "adjustment", "id": down["transaction"]["reference"]["id"]}
    assert low["payload"]["available"] == usd(300)
    assert resolved["payload"]["cause"] == {"type": "adjustment", "id": up["transaction"]["reference"]["id"]}
    assert resolved["payload"]["available"] == usd(600)


async def test_a_charge_refund_lifting_the_wallet_resolves(usd_wallet: UsdWallet) -> None:
    charge = await usd_wallet.sms(300)  # 1,000 -> 400
    refunded = await usd_wallet.client.post(
        f"/v1/admin/charges/{charge['id']}/refunds",
        json={"reason": "complaint"},
        headers=usd_wallet.admin_headers,
    )
    assert refunded.status_code == 201, refunded.text
    low, resolved = await usd_wallet.alerts()
    assert low["payload"]["cause"] == {"type": "charge", "id": charge["id"]}
    assert resolved["type"] == RESOLVED
    assert resolved["payload"]["cause"] == {"type": "charge_refund", "id": refunded.json()["id"]}
    assert resolved["payload"]["available"] == usd(1_000)


async def test_changing_the_threshold_re_evaluates_the_wallet(usd_wallet: UsdWallet) -> None:
    raised = await usd_wallet.client.patch(
        f"/v1/admin/tenants/{usd_wallet.tenant_id}",
        json={"low_balance_threshold": 2_000},
        headers=usd_wallet.admin_headers,
    )
    assert raised.status_code == 200, raised.text
    assert raised.json()["wallet"]["below_threshold"] is True
    # The owner lowers it under the balance: the spell ends.
    lowered = await usd_wallet.client.put(
        "/v1/wallet/low-balance-threshold",
        json={"amount": 800, "currency": "USD"},
        headers=owner_headers(usd_wallet.tenant_id),
    )
    assert lowered.status_code == 200, lowered.text
    assert lowered.json()["low_balance_threshold"] == usd(800)
    assert lowered.json()["below_threshold"] is False
    low, resolved = await usd_wallet.alerts()
    assert low["payload"]["cause"] == {"type": "threshold", "id": None}
    assert low["payload"]["threshold"] == usd(2_000)
    assert resolved["payload"]["threshold"] == usd(800)
    assert (await usd_wallet.wallet())["low_balance_threshold"] == usd(800)


async def test_threshold_zero_turns_alerts_off(usd_wallet: UsdWallet) -> None:
    off = await usd_wallet.client.put(
        "/v1/wallet/low-balance-threshold", json={"amount": 0}, headers=owner_headers(usd_wallet.tenant_id)
    )
    assert off.status_code == 200, off.text
    await usd_wallet.sms(450)  # 1,000 -> 100
    assert await usd_wallet.alerts() == []


async def test_only_the_owner_sets_the_threshold_in_the_wallets_currency(usd_wallet: UsdWallet) -> None:
    client, owner = usd_wallet.client, owner_headers(usd_wallet.tenant_id)
    url = "/v1/wallet/low-balance-threshold"
    assert_problem(
        await client.put(url, json={"amount": 100}, headers=member_headers(usd_wallet.tenant_id)),
        403,
        "FORBIDDEN",
    )
    assert_problem(
        await client.put(url, json={"amount": 100, "currency": "INR"}, headers=owner),
        422,
        "CURRENCY_MISMATCH",
    )
    for body in ({"amount": -1}, {"amount": 10.5}, {"amount": "100"}, {}, {"amount": 1, "extra": 1}):
        assert_problem(await client.put(url, json=body, headers=owner), 422, "VALIDATION_FAILED")
    assert (await usd_wallet.wallet())["low_balance_threshold"] == usd(500)


async def test_at_most_one_low_balance_a_day_even_when_it_flaps(usd_wallet: UsdWallet, db: Database) -> None:
    for _ in range(3):
        await usd_wallet.sms(300)  # down by 600: below 500
        await usd_wallet.adjust(600)  # back up
    assert [e["type"] for e in await usd_wallet.alerts()] == [LOW, RESOLVED]

    # The next day (the last alert moved back a day), the next crossing is announced again.
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE wallets SET low_balance_alerted_at = low_balance_alerted_at - interval '1 day'"
                " WHERE tenant_id = :t"
            ),
            {"t": usd_wallet.tenant_id},
        )
    crossing = await usd_wallet.sms(300)
    events = await usd_wallet.alerts()
    assert [e["type"] for e in events] == [LOW, RESOLVED, LOW]
    assert events[2]["payload"]["cause"] == {"type": "charge", "id": crossing["id"]}


async def test_many_concurrent_charges_across_two_api_processes_cross_once(
    open_wallet: Callable[[int, int], Awaitable[UsdWallet]], db: Database, settings: Settings
) -> None:
    wallet = await open_wallet(6_000, 5_000)
    async with isolated_client(settings, db) as other:  # a second API process: its own charge writer
        calls = [
            c.post(
                "/v1/usage", json={"kind": "sms", "reference_id": ref(), "quantity": 10}, headers=wallet.key
            )
            for _ in range(50)
            for c in (wallet.client, other)
        ]
        responses = await asyncio.gather(*calls)
    assert {r.status_code for r in responses} == {201}
    assert (await wallet.wallet())["available"] == usd(6_000 - 100 * 20)
    [event] = await wallet.alerts()
    assert event["type"] == LOW
    # The crossing charge is the one that took the wallet from 5,000 or more to under 5,000.
    available = event["payload"]["available"]["amount"]
    assert 5_000 - 20 <= available < 5_000


async def test_a_rolled_back_charge_records_no_event_and_changes_no_state(
    usd_wallet: UsdWallet, db: Database, settings: Settings
) -> None:
    tenant_id = usd_wallet.tenant_id
    writer = ChargeWriter(db, settings)
    record = UsageRecord(
        tenant_id=tenant_id,
        kind=UsageKind.SMS,
        reference_id=ref(),
        duration_seconds=None,
        quantity=400,
        actor="test",
    )
    async with db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        conn = raw.driver_connection
        assert conn is not None
        outer = conn.transaction()
        await outer.start()
        # The writer's own transaction becomes a savepoint inside ours, which is then rolled back.
        [[outcome]] = await writer._write_on(conn, [(tenant_id, [record])], check_existing=False)
        assert not isinstance(outcome, Exception)
        inside = await conn.fetchval(
            "SELECT count(*) FROM events WHERE tenant_id = $1 AND type = $2", tenant_id, LOW
        )
        assert inside == 1  # the alert was written with the charge...
        await outer.rollback()
    assert await alerts(db, tenant_id) == []  # ...and went with it
    async with db.engine.connect() as conn2:
        state = (
            await conn2.execute(
                text("SELECT balance, low_balance_since FROM wallets WHERE tenant_id = :t"), {"t": tenant_id}
            )
        ).one()
    assert tuple(state) == (1_000, None)


async def test_a_charge_not_paid_in_full_records_insufficient_funds_once(
    usd_wallet: UsdWallet, db: Database
) -> None:
    reference = ref("sms")
    body = {"kind": "sms", "reference_id": reference, "quantity": 600}  # 1,200 on a 1,000 balance
    first = await usd_wallet.client.post("/v1/usage", json=body, headers=usd_wallet.key)
    assert_problem(first, 402, "INSUFFICIENT_FUNDS")
    again = await usd_wallet.client.post(
        "/v1/usage", json=body, headers=usd_wallet.key
    )  # the telephony retry
    assert_problem(again, 402, "INSUFFICIENT_FUNDS")
    events = await stored_events(db, usd_wallet.tenant_id)
    [short] = [e for e in events if e["type"] == SHORT]
    assert short["payload"] == {
        "charge_id": first.json()["charge_id"],
        "kind": "sms",
        "reference_id": reference,
        "amount": usd(1_200),
        "charged": usd(1_000),
        "owed": usd(200),
    }
    [low] = await usd_wallet.alerts()
    assert low["payload"]["available"] == usd(0)
    await usd_wallet.sms(1, expect=402)
    assert len([e for e in await stored_events(db, usd_wallet.tenant_id) if e["type"] == SHORT]) == 2


async def test_an_omitted_threshold_takes_the_currency_default(
    admin_headers: dict[str, str], db: Database, settings: Settings
) -> None:
    async with isolated_client(settings, db, low_balance_thresholds={"USD": 700}) as client:
        made = []
        for extra in ({}, {"low_balance_threshold": 0}, {"low_balance_threshold": 90}):
            body = {"id": ref("t"), "name": "n", "country": "USA", "currency": "USD", **extra}
            response = await client.post("/v1/admin/tenants", json=body, headers=admin_headers)
            assert response.status_code == 201, response.text
            made.append(response.json()["wallet"]["low_balance_threshold"])
        inr = {"id": ref("t"), "name": "n", "country": "IND", "currency": "INR"}
        response = await client.post("/v1/admin/tenants", json=inr, headers=admin_headers)
        assert response.status_code == 201, response.text
    assert made == [usd(700), usd(0), usd(90)]
    assert response.json()["wallet"]["low_balance_threshold"] == {"amount": 0, "currency": "INR"}


@pytest.mark.usefixtures("no_bonus_rules_left_on")
async def test_a_topup_refund_hold_alerts_and_a_topup_credit_resolves(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    razorpay: FakeRazorpay,
    db: Database,
) -> None:
    tenant = await create_tenant(low_balance_threshold=3_000)  # INR, Rs 30.00
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    assert await alerts(db, tenant["id"]) == []  # credited over the threshold: nothing to say
    refund = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds",
        json={"amount": 3_000, "reason": "asked for it back"},
        headers=admin_headers,
    )
    assert refund.status_code == 201, refund.text
    [low] = await alerts(db, tenant["id"])
    # Held (and committed with its intent) before the provider was asked: that is what crossed.
    assert low["payload"]["cause"] == {"type": "topup_refund", "id": refund.json()["id"]}
    assert low["payload"]["available"] == {"amount": 2_000, "currency": "INR"}
    assert low["payload"]["reserved"] == {"amount": 3_000, "currency": "INR"}

    second, _ = await paid_topup(client, razorpay, tenant["id"], 2_000)
    low_again, resolved = await alerts(db, tenant["id"])
    assert low_again == low
    assert resolved["type"] == RESOLVED
    assert resolved["payload"]["cause"] == {"type": "topup", "id": second["id"]}
    assert resolved["payload"]["available"] == {"amount": 4_000, "currency": "INR"}


async def test_holds_released_at_expiry_resolve(held_call: tuple[UsdWallet, str], db: Database) -> None:
    wallet, call_id = held_call
    async with db.engine.begin() as conn:  # the call never hung up: its hold is past its expiry
        await conn.execute(
            text("UPDATE holds SET expires_at = now() - interval '1 second' WHERE tenant_id = :t"),
            {"t": wallet.tenant_id},
        )
    assert await expire_holds(db) >= 1
    low, resolved = await wallet.alerts()
    assert low["payload"]["cause"] == {"type": "hold", "id": call_id}
    assert resolved["type"] == RESOLVED
    assert resolved["payload"]["cause"] == {"type": "holds_expired", "id": None}
    assert resolved["payload"]["available"] == usd(520)
