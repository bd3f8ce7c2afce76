"""Call authorization: the minimum balance, how long a call may run, holds that never promise more than
the wallet has, and the hangup charge that settles (or finds expired) the hold."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import text

from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from tests.fixtures.usage import create_plan, ledger, ref, subscribe, usage_key, usd, wallet_of
from walletsvc.db.engine import Database
from walletsvc.services.calls import expire_holds
from walletsvc.services.ledger_verify import verify_ledger

# The default USD rates: 5 cents a minute by the minute, a 10 cent connection fee; minimum balance 100.
# The default hold covers DEFAULT_HOLD_SECONDS (300 s): 5 minutes + the fee = 35 cents.


async def authorize(
    client: httpx.AsyncClient, key: dict[str, str], call_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/v1/calls/{call_id}/authorize", json=body, headers=key)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def hang_up(
    client: httpx.AsyncClient, key: dict[str, str], call_id: str, duration_seconds: int
) -> httpx.Response:
    return await client.post(
        "/v1/usage",
        json={"kind": "call", "reference_id": call_id, "duration_seconds": duration_seconds},
        headers=key,
    )


async def hold_row(db: Database, tenant_id: str, call_id: str) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, amount FROM holds WHERE tenant_id = :t AND call_id = :c"),
                {"t": tenant_id, "c": call_id},
            )
        ).one()
    return dict(row._mapping)


async def test_authorize_answers_how_long_the_balance_pays_for_and_holds_the_expected_cost(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    call_id = ref("call")

    answer = await authorize(client, key, call_id)
    assert answer["allowed"] is True
    assert answer["call_id"] == call_id
    assert answer["tenant_id"] == tenant["id"]
    # (1,000 - 10 fee) / 5 cents = 198 whole minutes.
    assert answer["max_seconds"] == 198 * 60
    assert answer["hold"] == usd(35)
    assert answer["available"] == usd(965)
    assert answer["expires_at"] is not None
    assert answer["code"] is None
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["reserved"], wallet["available"]) == (usd(1_000), usd(35), usd(965))


async def test_authorize_with_a_requested_length_caps_max_seconds_and_holds_that_length(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    answer = await authorize(client, key, ref("call"), max_duration_seconds=150)
    assert answer["max_seconds"] == 150  # the balance pays for far more: the request is the limit
    assert answer["hold"] == usd(3 * 5 + 10)  # the requested 150 s bill 3 minutes


async def test_inr_call_may_run_as_long_as_the_paise_pay_for(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="INR", balance=4_500)
    key = await usage_key(client, admin_headers, tenant["id"])
    answer = await authorize(client, key, ref("call"))
    # Rs 45 at Rs 10 a minute: 4 whole minutes, and the hold is what those 4 minutes cost.
    assert answer["max_seconds"] == 240
    assert answer["hold"] == {"amount": 4_000, "currency": "INR"}
    assert answer["available"] == {"amount": 500, "currency": "INR"}


async def test_max_seconds_counts_the_remaining_quota_before_the_balance(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=110)
    plan = await create_plan(client, admin_headers, included_minutes=10)
    await subscribe(client, admin_headers, tenant["id"], plan["id"])
    key = await usage_key(client, admin_headers, tenant["id"])
    answer = await authorize(client, key, ref("call"))
    # 10 quota minutes, then (110 - 10 fee) / 5 = 20 paid minutes.
    assert answer["max_seconds"] == 30 * 60
    # The expected 5 minutes are all quota: only the connection fee is held.
    assert answer["hold"] == usd(10)


async def test_authorizing_the_same_call_again_answers_the_same_hold_and_holds_nothing_more(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    call_id = ref("call")
    first = await authorize(client, key, call_id, max_duration_seconds=600)
    again = await authorize(client, key, call_id, max_duration_seconds=600)
    assert again["allowed"] is True
    assert (again["hold"], again["max_seconds"], again["expires_at"]) == (
        first["hold"],
        first["max_seconds"],
        first["expires_at"],
    )
    assert first["hold"] == usd(60)
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert wallet["reserved"] == usd(60)
    async with db.engine.connect() as conn:
        count = (
            await conn.execute(text("SELECT count(*) FROM holds WHERE tenant_id = :t"), {"t": tenant["id"]})
        ).scalar_one()
    assert count == 1


async def test_below_the_minimum_balance_a_call_is_refused_without_a_hold(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    short = await create_tenant(currency="USD", country="USA", balance=99)
    key = await usage_key(client, admin_headers, short["id"])
    answer = await authorize(client, key, ref("call"))
    assert answer["allowed"] is False
    assert answer["code"] == "BELOW_MINIMUM"
    assert answer["hold"] is None
    assert answer["max_seconds"] == 0
    assert (await wallet_of(client, admin_headers, short["id"]))["reserved"] == usd(0)

    inr = await create_tenant(currency="INR", balance=999)
    inr_key = await usage_key(client, admin_headers, inr["id"])
    assert (await authorize(client, inr_key, ref("call")))["code"] == "BELOW_MINIMUM"

    exactly = await create_tenant(currency="USD", country="USA", balance=100)
    exact_key = await usage_key(client, admin_headers, exactly["id"])
    at_minimum = await authorize(client, exact_key, ref("call"))
    assert at_minimum["allowed"] is True
    assert at_minimum["max_seconds"] == 18 * 60  # (100 - 10) / 5


async def test_authorize_checks_credentials_like_usage(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    other = await create_tenant(currency="USD", country="USA", balance=1_000)
    platform = await usage_key(client, admin_headers, None)
    bound = await usage_key(client, admin_headers, tenant["id"])
    reader = await usage_key(client, admin_headers, tenant["id"], scopes=("wallet:read",))
    call = f"/v1/calls/{ref('call')}/authorize"
    assert_problem(await client.post(call, json={}, headers=platform), 422, "VALIDATION_FAILED")
    assert_problem(await client.post(call, json={"tenant_id": other["id"]}, headers=bound), 403, "FORBIDDEN")
    assert_problem(await client.post(call, json={}, headers=reader), 403, "FORBIDDEN")
    assert_problem(
        await client.post(call, json={"tenant_id": new_tenant_id()}, headers=platform), 404, "NOT_FOUND"
    )
    assert_problem(
        await client.post(call, json={"max_duration_seconds": 60.0}, headers=bound), 422, "VALIDATION_FAILED"
    )
    named = await client.post(call, json={"tenant_id": tenant["id"]}, headers=platform)
    assert named.status_code == 200, named.text
    assert named.json()["allowed"] is True
    assert (await wallet_of(client, admin_headers, other["id"]))["reserved"] == usd(0)


async def test_concurrent_holds_never_reserve_more_than_the_balance(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=5_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    # 198 minutes at 5 cents + the 10 cent fee: each hold is exactly 1,000.
    seconds = 198 * 60

    answers = await asyncio.gather(
        *(authorize(client, key, ref("call"), max_duration_seconds=seconds) for _ in range(6))
    )

    granted = [a for a in answers if a["allowed"]]
    refused = [a for a in answers if not a["allowed"]]
    assert len(granted) == 5
    assert [a["hold"] for a in granted] == [usd(1_000)] * 5
    assert len(refused) == 1
    assert refused[0]["hold"] is None
    assert refused[0]["code"] == "BELOW_MINIMUM"
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert wallet["reserved"] == usd(5_000)
    assert wallet["available"] == usd(0)
    assert wallet["reserved"]["amount"] <= wallet["balance"]["amount"]


async def test_many_concurrent_holds_on_a_small_balance_stay_within_it(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="INR", balance=10_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    # 3 minutes at Rs 10 a minute: each hold is 3,000 paise.
    answers = await asyncio.gather(
        *(authorize(client, key, ref("call"), max_duration_seconds=180) for _ in range(20))
    )
    holds = [a["hold"]["amount"] for a in answers if a["allowed"]]
    # Three full holds leave 1,000, exactly the minimum: a fourth may start for 1 minute, held at 1,000.
    assert sorted(holds) == [1_000, 3_000, 3_000, 3_000]
    assert Counter(a["code"] for a in answers if not a["allowed"]) == {"BELOW_MINIMUM": 16}
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert wallet["reserved"]["amount"] == sum(holds) == 10_000
    assert wallet["available"]["amount"] == 0


async def test_hangup_settles_the_hold_and_charges_the_real_cost(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    short, long = ref("call"), ref("call")
    assert (await authorize(client, key, short))["hold"] == usd(35)
    assert (await authorize(client, key, long))["hold"] == usd(35)
    assert (await wallet_of(client, admin_headers, tenant["id"]))["reserved"] == usd(70)

    # Shorter than its hold: charged what it cost, the hold released in full.
    ended = await hang_up(client, key, short, 45)
    assert ended.status_code == 201, ended.text
    assert ended.json()["amount"] == usd(15)
    assert ended.json()["hold_released"] == usd(35)
    assert (await hold_row(db, tenant["id"], short))["status"] == "settled"
    assert (await wallet_of(client, admin_headers, tenant["id"]))["reserved"] == usd(35)

    # Longer than its hold (15 minutes against the 5 held): charged in full all the same.
    ended = await hang_up(client, key, long, 900)
    assert ended.status_code == 201, ended.text
    assert ended.json()["amount"] == usd(15 * 5 + 10)
    assert ended.json()["charged"] == usd(85)
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["reserved"]) == (usd(1_000 - 15 - 85), usd(0))

    # A retried hangup does not release anything again.
    assert (await hang_up(client, key, long, 900)).status_code == 200
    assert (await wallet_of(client, admin_headers, tenant["id"]))["reserved"] == usd(0)


async def test_call_longer_than_its_max_seconds_is_charged_in_full_and_the_rest_is_owed(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    call_id = ref("call")
    answer = await authorize(client, key, call_id)
    assert answer["max_seconds"] == 11_880

    # The call ran past what was allowed: 20,000 s bill 334 minutes and the fee, 1,680 in all.
    ended = await hang_up(client, key, call_id, 20_000)
    problem = assert_problem(ended, 402, "INSUFFICIENT_FUNDS")
    assert problem["amount"] == usd(1_680)
    assert problem["charged"] == usd(1_000)
    assert problem["owed"] == usd(680)
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["reserved"], wallet["owed"], wallet["flagged"]) == (
        usd(0),
        usd(0),
        usd(680),
        True,
    )


async def test_another_calls_hold_is_not_spent_by_a_hangup(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=300)
    key = await usage_key(client, admin_headers, tenant["id"])
    ongoing, ending = ref("call"), ref("call")
    assert (await authorize(client, key, ongoing, max_duration_seconds=1_800))["hold"] == usd(160)
    assert (await authorize(client, key, ending, max_duration_seconds=60))["hold"] == usd(15)
    # The ending call ran 40 minutes (210): its own hold is released, but the ongoing call's 160 stays
    # held, so only 140 may pay for it.
    ended = await hang_up(client, key, ending, 2_400)
    problem = assert_problem(ended, 402, "INSUFFICIENT_FUNDS")
    assert (problem["charged"], problem["owed"]) == (usd(140), usd(70))
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["reserved"], wallet["available"]) == (usd(160), usd(160), usd(0))


async def test_hangup_after_its_hold_expired_charges_right_and_releases_nothing_twice(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    call_id, other = ref("call"), ref("call")
    assert (await authorize(client, key, call_id, max_duration_seconds=600))["hold"] == usd(60)
    assert (await authorize(client, key, other, max_duration_seconds=120))["hold"] == usd(20)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE holds SET expires_at = now() - interval '1 second' "
                "WHERE tenant_id = :t AND call_id = :c"
            ),
            {"t": tenant["id"], "c": call_id},
        )

    assert await expire_holds(db) >= 1
    assert (await hold_row(db, tenant["id"], call_id))["status"] == "expired"
    assert (await hold_row(db, tenant["id"], other))["status"] == "active"
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["reserved"]) == (usd(1_000), usd(20))
    # Running it again finds nothing more of this tenant's to give back.
    await expire_holds(db)
    assert (await wallet_of(client, admin_headers, tenant["id"]))["reserved"] == usd(20)

    ended = await hang_up(client, key, call_id, 610)  # 11 minutes + the fee, past the 10 held
    assert ended.status_code == 201, ended.text
    assert ended.json()["amount"] == usd(65)
    assert ended.json()["charged"] == usd(65)
    assert ended.json()["hold_released"] == usd(0)
    assert (await hold_row(db, tenant["id"], call_id))["status"] == "expired"
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    # The other call's hold is still there, the expired one was not taken off a second time.
    assert (wallet["balance"], wallet["reserved"]) == (usd(935), usd(20))
    assert [r["amount"] for r in await ledger(client, tenant["id"], "usage_charge")] == [usd(-65)]

    # The expired call id cannot start again.
    again = await authorize(client, key, call_id)
    assert (again["allowed"], again["code"]) == (False, "CALL_ID_USED")
    async with db.engine.connect() as conn:
        results, _ = await verify_ledger(conn)
    assert [r.check.name for r in results if not r.ok] == []


async def test_authorize_itself_releases_expired_holds_of_the_tenant(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    stale = ref("call")
    # 198 minutes + the fee hold all 1,000: nothing is left for another call.
    assert (await authorize(client, key, stale, max_duration_seconds=198 * 60))["hold"] == usd(1_000)
    assert (await authorize(client, key, ref("call")))["code"] == "BELOW_MINIMUM"
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE holds SET expires_at = now() - interval '1 second' WHERE tenant_id = :t"),
            {"t": tenant["id"]},
        )
    fresh = await authorize(client, key, ref("call"))
    assert fresh["allowed"] is True
    assert fresh["hold"] == usd(35)
    assert (await wallet_of(client, admin_headers, tenant["id"]))["reserved"] == usd(35)


async def test_a_settled_call_id_cannot_be_authorized_again(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    call_id = ref("call")
    assert (await authorize(client, key, call_id))["allowed"] is True
    assert (await hang_up(client, key, call_id, 30)).status_code == 201

    again = await authorize(client, key, call_id)
    assert again["allowed"] is False
    assert again["code"] == "CALL_ID_USED"
    assert again["hold"] is None
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["reserved"]) == (usd(985), usd(0))


async def test_a_call_id_already_charged_without_a_hold_cannot_be_authorized_after_its_hangup(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    call_id = ref("call")
    # The hangup arrives first (an authorization that was never sent, or delayed and retried late).
    assert (await hang_up(client, key, call_id, 30)).status_code == 201

    late = await authorize(client, key, call_id)
    assert (late["allowed"], late["code"], late["hold"]) == (False, "CALL_ID_USED", None)
    # Nothing stays held for a call that is over: no hangup will ever settle such a hold.
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["reserved"]) == (usd(985), usd(0))
