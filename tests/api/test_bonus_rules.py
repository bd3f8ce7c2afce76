"""Top-up bonus rules: managed by admins, credited as a separate `bonus` row against `promotions` when
a top-up succeeds, the best one only, and once.

Bonus rules are global per currency, so every rule a test creates is switched off when it ends: the
other tests' INR top-ups must not pick it up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import owner_headers
from tests.fixtures.razorpay_flow import (
    FakeRazorpay,
    balance,
    deliver,
    paid_topup,
    payment_event,
    start_topup,
    topup_detail,
    transactions,
    verify,
)
from tests.fixtures.tenants import TenantFactory

RuleFactory = Callable[..., Awaitable[dict[str, Any]]]


pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")


@pytest.fixture
async def bonus_rule(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> AsyncIterator[RuleFactory]:
    created: list[str] = []

    async def _create(**fields: Any) -> dict[str, Any]:
        response = await client.post(
            "/v1/admin/bonus-rules", json={"currency": "INR", **fields}, headers=admin_headers
        )
        assert response.status_code == 201, response.text
        rule: dict[str, Any] = response.json()
        created.append(rule["id"])
        return rule

    yield _create
    for rule_id in created:
        off = await client.patch(
            f"/v1/admin/bonus-rules/{rule_id}", json={"active": False}, headers=admin_headers
        )
        assert off.status_code == 200, off.text


def iso(moment: datetime) -> str:
    return moment.isoformat()


# --- credited --------------------------------------------------------------------------------------


async def test_percent_rule_credits_a_separate_bonus_row_against_promotions(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    rule = await bonus_rule(min_amount=50_000, percent="10", description="10% from Rs 500")
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 60_000)
    assert topup["credited"] == {"amount": 60_000, "currency": "INR"}
    assert topup["bonus"] == {"amount": 6_000, "currency": "INR"}
    assert await balance(client, tenant["id"]) == 66_000

    rows = await transactions(client, tenant["id"])
    by_type = {r["type"]: r for r in rows}
    assert len(rows) == 2
    assert by_type["topup"]["amount"]["amount"] == 60_000
    assert by_type["topup"]["counter_account"] == "provider:razorpay"
    bonus = by_type["bonus"]
    assert bonus["amount"] == {"amount": 6_000, "currency": "INR"}
    assert bonus["counter_account"] == "promotions"
    assert bonus["reference"] == {"type": "topup", "id": topup["id"]}
    assert rule["id"] in bonus["description"]
    assert bonus["balance_before"]["amount"] == 60_000
    assert bonus["balance_after"]["amount"] == 66_000


async def test_fixed_rule_credits_its_fixed_amount(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    await bonus_rule(min_amount=50_000, fixed_amount=2_500)
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 80_000)
    assert topup["bonus"] == {"amount": 2_500, "currency": "INR"}
    assert await balance(client, tenant["id"]) == 82_500


async def test_topup_exactly_at_min_amount_gets_the_bonus(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    await bonus_rule(min_amount=50_000, percent="10")
    tenant = await create_tenant()
    await paid_topup(client, razorpay, tenant["id"], 50_000)
    assert await balance(client, tenant["id"]) == 55_000


async def test_fractional_percent_is_rounded_half_up_to_paise(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    rule = await bonus_rule(min_amount=10_000, percent="5.5")
    assert rule["percent"] == "5.5"
    tenant = await create_tenant()
    # 5.5% of 12,345 paise is 678.975 paise: 679
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 12_345)
    assert topup["bonus"] == {"amount": 679, "currency": "INR"}


async def test_below_min_amount_no_bonus(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    await bonus_rule(min_amount=50_000, percent="10")
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 49_999)
    assert topup["bonus"] is None
    assert await balance(client, tenant["id"]) == 49_999
    assert [r["type"] for r in await transactions(client, tenant["id"])] == ["topup"]


@pytest.mark.parametrize(
    "window",
    [
        pytest.param({"starts_at": 1, "ends_at": 2}, id="not-started"),
        pytest.param({"starts_at": -2, "ends_at": -1}, id="ended"),
    ],
)
async def test_rule_outside_its_window_does_not_apply(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    bonus_rule: RuleFactory,
    window: dict[str, int],
) -> None:
    now = datetime.now(UTC)
    await bonus_rule(
        min_amount=10_000,
        percent="10",
        starts_at=iso(now + timedelta(days=window["starts_at"])),
        ends_at=iso(now + timedelta(days=window["ends_at"])),
    )
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 60_000)
    assert topup["bonus"] is None
    assert await balance(client, tenant["id"]) == 60_000


async def test_rule_inside_its_window_applies(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    now = datetime.now(UTC)
    await bonus_rule(
        min_amount=10_000,
        fixed_amount=1_000,
        starts_at=iso(now - timedelta(days=1)),
        ends_at=iso(now + timedelta(days=1)),
    )
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 60_000)
    assert topup["bonus"] == {"amount": 1_000, "currency": "INR"}


async def test_inactive_rule_does_not_apply(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    await bonus_rule(min_amount=10_000, percent="10", active=False)
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 60_000)
    assert topup["bonus"] is None
    assert await balance(client, tenant["id"]) == 60_000


async def test_rule_switched_off_by_patch_no_longer_applies(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    bonus_rule: RuleFactory,
    admin_headers: dict[str, str],
) -> None:
    rule = await bonus_rule(min_amount=10_000, percent="10")
    off = await client.patch(
        f"/v1/admin/bonus-rules/{rule['id']}", json={"active": False}, headers=admin_headers
    )
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 60_000)
    assert topup["bonus"] is None


async def test_rule_of_another_currency_does_not_apply(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    await bonus_rule(currency="USD", min_amount=0, percent="50")
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 60_000)
    assert topup["bonus"] is None


async def test_two_rules_only_the_best_applies(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    await bonus_rule(min_amount=10_000, fixed_amount=1_000)
    best = await bonus_rule(min_amount=50_000, percent="5")
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 100_000)
    assert topup["bonus"] == {"amount": 5_000, "currency": "INR"}
    bonuses = await transactions(client, tenant["id"], type_="bonus")
    assert len(bonuses) == 1
    assert best["id"] in bonuses[0]["description"]
    assert await balance(client, tenant["id"]) == 105_000


async def test_bonus_is_credited_once_when_the_topup_is_confirmed_twice(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, bonus_rule: RuleFactory
) -> None:
    await bonus_rule(min_amount=50_000, percent="10")
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 60_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id)
    verified = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert verified.json()["status"] == "succeeded"
    hook = await deliver(client, payment_event("payment.captured", payment))
    assert hook.status_code == 200, hook.text
    again = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert again.json()["bonus"] == {"amount": 6_000, "currency": "INR"}
    assert await balance(client, tenant["id"]) == 66_000
    assert len(await transactions(client, tenant["id"], type_="bonus")) == 1
    assert (await topup_detail(client, tenant["id"], topup["id"]))["bonus"]["amount"] == 6_000


# --- managed by admins -----------------------------------------------------------------------------


async def test_rules_are_listed_and_patched(
    client: httpx.AsyncClient, bonus_rule: RuleFactory, admin_headers: dict[str, str]
) -> None:
    rule = await bonus_rule(min_amount=50_000, percent="10", description="Diwali")
    assert rule["min_amount"] == {"amount": 50_000, "currency": "INR"}
    assert rule["percent"] == "10"
    assert rule["fixed_amount"] is None
    assert rule["active"] is True
    listed = await client.get("/v1/admin/bonus-rules", params={"currency": "INR"}, headers=admin_headers)
    assert listed.status_code == 200, listed.text
    assert rule in listed.json()

    patched = await client.patch(
        f"/v1/admin/bonus-rules/{rule['id']}",
        json={"fixed_amount": 3_000, "min_amount": 20_000},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["fixed_amount"] == {"amount": 3_000, "currency": "INR"}
    assert body["percent"] is None  # a fixed amount replaces the percent
    assert body["min_amount"]["amount"] == 20_000
    assert body["description"] == "Diwali"


async def test_percent_as_a_json_float_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/admin/bonus-rules",
        json={"currency": "INR", "min_amount": 50_000, "percent": 5.5},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"


async def test_percent_and_fixed_amount_together_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/admin/bonus-rules",
        json={"currency": "INR", "min_amount": 50_000, "percent": "5", "fixed_amount": 1_000},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="neither-percent-nor-fixed"),
        pytest.param({"percent": "0"}, id="zero-percent"),
        pytest.param({"percent": "100.5"}, id="over-100-percent"),
        pytest.param({"fixed_amount": 0}, id="zero-fixed"),
        pytest.param({"fixed_amount": 10.5}, id="float-fixed"),
        pytest.param({"percent": "5", "min_amount": -1}, id="negative-minimum"),
    ],
)
async def test_nonsensical_rules_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], fields: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/admin/bonus-rules",
        json={"currency": "INR", "min_amount": 50_000, **fields},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text


async def test_rule_that_ends_before_it_starts_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    response = await client.post(
        "/v1/admin/bonus-rules",
        json={
            "currency": "INR",
            "min_amount": 0,
            "percent": "5",
            "starts_at": iso(now + timedelta(days=2)),
            "ends_at": iso(now + timedelta(days=1)),
        },
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text


async def test_patch_into_an_invalid_rule_is_refused(
    client: httpx.AsyncClient, bonus_rule: RuleFactory, admin_headers: dict[str, str]
) -> None:
    rule = await bonus_rule(min_amount=50_000, percent="10")
    response = await client.patch(
        f"/v1/admin/bonus-rules/{rule['id']}", json={"percent": "250"}, headers=admin_headers
    )
    assert response.status_code == 422, response.text


async def test_patch_of_an_unknown_rule_is_not_found(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/v1/admin/bonus-rules/bonus_doesnotexist", json={"active": False}, headers=admin_headers
    )
    assert response.status_code == 404, response.text


async def test_tenant_owner_cannot_manage_rules(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    created = await client.post(
        "/v1/admin/bonus-rules",
        json={"currency": "INR", "min_amount": 0, "percent": "50"},
        headers=owner_headers(tenant["id"]),
    )
    assert created.status_code == 403, created.text
    listed = await client.get("/v1/admin/bonus-rules", headers=owner_headers(tenant["id"]))
    assert listed.status_code == 403, listed.text


@pytest.mark.parametrize(
    "window",
    [
        pytest.param(
            {"starts_at": "2020-01-01T00:00:00", "ends_at": "2099-01-01T00:00:00+00:00"}, id="mixed"
        ),
        pytest.param({"starts_at": "2020-01-01T00:00:00"}, id="naive-start"),
        pytest.param({"ends_at": "2099-01-01T00:00:00"}, id="naive-end"),
    ],
)
async def test_window_without_a_timezone_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], window: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/admin/bonus-rules",
        json={"currency": "INR", "min_amount": 0, "percent": "5", "active": False, **window},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"


async def test_patch_moving_the_window_without_a_timezone_is_refused(
    client: httpx.AsyncClient, bonus_rule: RuleFactory, admin_headers: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    rule = await bonus_rule(
        min_amount=50_000, percent="10", active=False, ends_at=iso(now + timedelta(days=9))
    )
    response = await client.patch(
        f"/v1/admin/bonus-rules/{rule['id']}",
        json={"starts_at": "2020-01-01T00:00:00"},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("field", ["active", "min_amount"])
async def test_patch_with_null_for_a_required_field_is_refused(
    client: httpx.AsyncClient, bonus_rule: RuleFactory, admin_headers: dict[str, str], field: str
) -> None:
    rule = await bonus_rule(min_amount=50_000, percent="10", active=False)
    response = await client.patch(
        f"/v1/admin/bonus-rules/{rule['id']}", json={field: None}, headers=admin_headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
    listed = await client.get("/v1/admin/bonus-rules", params={"currency": "INR"}, headers=admin_headers)
    [unchanged] = [r for r in listed.json() if r["id"] == rule["id"]]
    assert unchanged == rule


async def test_patch_clearing_the_window_keeps_the_rule(
    client: httpx.AsyncClient, bonus_rule: RuleFactory, admin_headers: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    rule = await bonus_rule(
        min_amount=50_000,
        percent="10",
        active=False,
        starts_at=iso(now),
        ends_at=iso(now + timedelta(days=1)),
    )
    response = await client.patch(
        f"/v1/admin/bonus-rules/{rule['id']}",
        json={"starts_at": None, "ends_at": None},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["starts_at"] is None
    assert response.json()["ends_at"] is None


# --- refunds take the bonus back -----------------------------------------------------------------------


async def test_refunds_take_back_the_bonus_share_and_all_of_it_in_the_end(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    bonus_rule: RuleFactory,
    admin_headers: dict[str, str],
) -> None:
    await bonus_rule(min_amount=50_000, percent="10")
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 60_001)
    assert topup["bonus"] == {"amount": 6_000, "currency": "INR"}  # 6000.1 rounds to 6000
    url = f"/v1/admin/topups/{topup['id']}/refunds"

    first = await client.post(url, json={"amount": 20_000, "reason": "part"}, headers=admin_headers)
    assert first.status_code == 201, first.text
    # 6000 * 20000 // 60001 = 1999 of the bonus goes with the first part.
    assert await balance(client, tenant["id"]) == 66_001 - 20_000 - 1_999
    rest = await client.post(url, json={"reason": "the rest"}, headers=admin_headers)
    assert rest.status_code == 201, rest.text
    assert await balance(client, tenant["id"]) == 0  # every paisa of top-up and bonus went back

    rows = await transactions(client, tenant["id"])
    taken_back = [r for r in rows if r["type"] == "bonus" and r["amount"]["amount"] < 0]
    assert sorted(r["amount"]["amount"] for r in taken_back) == [-4_001, -1_999]
    assert all(r["counter_account"] == "promotions" for r in taken_back)
    assert {r["reference"]["type"] for r in taken_back} == {"topup_refund"}


async def test_a_refund_needs_the_wallet_to_hold_the_bonus_share_too(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    bonus_rule: RuleFactory,
    admin_headers: dict[str, str],
) -> None:
    await bonus_rule(min_amount=50_000, percent="10")
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 50_000)
    spent = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": -5_001, "reason": "usage elsewhere"},
        headers=admin_headers,
    )
    assert spent.status_code == 201, spent.text
    # 49,999 left: the whole top-up (50,000) plus its bonus (5,000) cannot go back without force.
    refused = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds", json={"reason": "all"}, headers=admin_headers
    )
    assert refused.status_code == 402, refused.text
    assert refused.json()["requested"]["amount"] == 55_000
    assert await balance(client, tenant["id"]) == 49_999
