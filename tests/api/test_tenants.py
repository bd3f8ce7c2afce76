"""Admins open tenants (each with a wallet), read them, and list them with filters and cursors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.auth import owner_headers
from tests.fixtures.problems import assert_problem
from tests.fixtures.routes import cursor_of
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from walletsvc.db.engine import Database
from walletsvc.db.repositories.wallets import WalletRepository


def money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


async def walk_tenants(
    client: httpx.AsyncClient, headers: dict[str, str], *, limit: int, **filters: str
) -> list[dict[str, Any]]:
    """Every tenant the list shows for these filters, page by page, checking each page on the way."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        params: dict[str, Any] = {"limit": limit, **filters}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/admin/tenants", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"data", "next_cursor"}
        assert len(page["data"]) <= limit
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert len(page["data"]) == limit, "a page that is not the last one must be full"
    raise AssertionError("the tenant list never ended")


async def set_flagged(db: Database, tenant_id: str) -> None:
    # No route flags a tenant yet (a failed charge will); set it the way the charge path does.
    async with db.sessionmaker() as session:
        await WalletRepository(session).set_flagged(tenant_id, True)
        await session.commit()


async def test_opening_a_tenant_opens_an_empty_wallet_in_its_currency(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    tenant_id = new_tenant_id()
    body = {"id": tenant_id, "name": "Acme Calls", "country": "IND", "currency": "INR"}
    response = await client.post("/v1/admin/tenants", json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    created = response.json()
    assert created["id"] == tenant_id
    assert created["name"] == "Acme Calls"
    assert created["country"] == "IND"
    assert created["currency"] == "INR"
    assert created["data_residency_region"] is None
    assert created["payments_provider"] is None
    assert created["created_at"]
    wallet = created["wallet"]
    assert wallet["tenant_id"] == tenant_id
    assert wallet["currency"] == "INR"
    assert wallet["balance"] == money(0, "INR")
    assert wallet["reserved"] == money(0, "INR")
    assert wallet["available"] == money(0, "INR")
    assert wallet["low_balance_threshold"] == money(0, "INR")
    assert wallet["below_threshold"] is False
    assert wallet["flagged"] is False

    read = await client.get(f"/v1/admin/tenants/{tenant_id}", headers=admin_headers)
    assert read.status_code == 200, read.text
    assert read.json() == created

    admin_wallet = await client.get(f"/v1/admin/tenants/{tenant_id}/wallet", headers=admin_headers)
    assert admin_wallet.status_code == 200, admin_wallet.text
    assert admin_wallet.json()["balance"] == money(0, "INR")
    assert admin_wallet.json()["tenant_id"] == tenant_id

    history = await client.get(
        "/v1/admin/transactions", params={"tenant_id": tenant_id}, headers=admin_headers
    )
    assert history.json() == {"data": [], "next_cursor": None}


async def test_optional_tenant_settings_are_kept(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {
        "id": new_tenant_id(),
        "name": "Mumbai Voice",
        "country": "IND",
        "currency": "INR",
        "data_residency_region": "ap-south-1",
        "payments_provider": "stripe",
        "low_balance_threshold": 50_000,
    }
    response = await client.post("/v1/admin/tenants", json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["data_residency_region"] == "ap-south-1"
    assert created["payments_provider"] == "stripe"
    assert created["wallet"]["low_balance_threshold"] == money(50_000, "INR")
    assert created["wallet"]["below_threshold"] is True  # 0 available is below a 500.00 threshold


async def test_duplicate_tenant_id_is_refused_and_the_first_tenant_is_untouched(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    first = await create_tenant(currency="INR", balance=700)
    again = {"id": first["id"], "name": "Impostor", "country": "USA", "currency": "USD"}
    response = await client.post("/v1/admin/tenants", json=again, headers=admin_headers)
    body = assert_problem(response, 409, "ALREADY_EXISTS")
    assert first["id"] in body["detail"]

    read = (await client.get(f"/v1/admin/tenants/{first['id']}", headers=admin_headers)).json()
    assert read["name"] == first["name"]
    assert read["currency"] == "INR"
    assert read["wallet"]["balance"] == money(700, "INR")


@pytest.mark.parametrize(
    "path",
    ["/v1/admin/tenants/{id}", "/v1/admin/tenants/{id}/wallet"],
)
async def test_unknown_tenant_is_not_found(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
) -> None:
    missing = new_tenant_id()
    body = assert_problem(await client.get(path.format(id=missing), headers=admin_headers), 404, "NOT_FOUND")
    assert missing in body["detail"]


@pytest.mark.parametrize(
    ("currency", "country", "amount", "display"),
    [
        ("JPY", "JPN", 1_234_567, "1234567"),  # no minor unit: the amount is whole yen
        ("INR", "IND", 123_456_789, "1234567.89"),
        ("USD", "USA", 1_999, "19.99"),
        ("KWD", "KWT", 1_250, "1.250"),  # three minor digits: 1.250 dinar is 1250 fils
    ],
)
async def test_amounts_stay_exact_integers_whatever_the_currency_minor_digits(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
    currency: str,
    country: str,
    amount: int,
    display: str,
) -> None:
    tenant = await create_tenant(currency=currency, country=country)
    assert tenant["wallet"]["balance"] == money(0, currency)
    for step in (amount, -1, 1):
        credited = await client.post(
            f"/v1/admin/tenants/{tenant['id']}/adjustments",
            json={"amount": step, "reason": "exactness"},
            headers=admin_headers,
        )
        assert credited.status_code == 201, credited.text
    wallet = (await client.get(f"/v1/admin/tenants/{tenant['id']}/wallet", headers=admin_headers)).json()
    assert wallet["balance"] == money(amount, currency)
    assert type(wallet["balance"]["amount"]) is int
    assert wallet["currency"] == currency
    read = (await client.get(f"/v1/admin/tenants/{tenant['id']}", headers=admin_headers)).json()
    assert read["wallet"]["available"] == money(amount, currency)

    history = (
        await client.get("/v1/admin/transactions", params={"tenant_id": tenant["id"]}, headers=admin_headers)
    ).json()["data"]
    assert [row["amount"] for row in history] == [
        money(1, currency),
        money(-1, currency),
        money(amount, currency),
    ]
    assert all(type(row["balance_after"]["amount"]) is int for row in history)

    # The CSV shows the amount in major units with exactly the currency's minor digits.
    csv_text = (await client.get("/v1/transactions/export.csv", headers=owner_headers(tenant["id"]))).text
    oldest = csv_text.strip().splitlines()[-1].split(",")
    assert oldest[3] == str(amount)
    assert oldest[4] == currency
    assert oldest[5] == display


@pytest.mark.parametrize("currency", ["XXX", "ABC", "ZZZ", "inr", "RUPEE", "", "IN", "₹", 356, None])
async def test_unknown_currency_is_refused_and_no_tenant_is_opened(
    client: httpx.AsyncClient, admin_headers: dict[str, str], currency: Any
) -> None:
    tenant_id = new_tenant_id()
    body = {"id": tenant_id, "name": "Acme", "country": "IND", "currency": currency}
    response = await client.post("/v1/admin/tenants", json=body, headers=admin_headers)
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert (await client.get(f"/v1/admin/tenants/{tenant_id}", headers=admin_headers)).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"id": ""},
        {"id": "has space"},
        {"id": "-leading-dash"},
        {"id": "x" * 65},
        {"id": 12345},
        {"name": ""},
        {"name": "n" * 201},
        {"country": "IN"},
        {"country": "ind"},
        {"payments_provider": "paypal"},
        {"data_residency_region": "AP SOUTH 1"},
        {"low_balance_threshold": -1},
        {"low_balance_threshold": 10.5},
        {"low_balance_threshold": "100"},
    ],
)
async def test_invalid_tenant_fields_are_refused_and_nothing_is_opened(
    client: httpx.AsyncClient, admin_headers: dict[str, str], change: dict[str, Any]
) -> None:
    tenant_id = new_tenant_id()
    body = {"id": tenant_id, "name": "Acme", "country": "IND", "currency": "INR", **change}
    assert_problem(
        await client.post("/v1/admin/tenants", json=body, headers=admin_headers), 422, "VALIDATION_FAILED"
    )
    assert (await client.get(f"/v1/admin/tenants/{tenant_id}", headers=admin_headers)).status_code == 404


@pytest.mark.parametrize("missing", ["id", "name", "country", "currency"])
async def test_each_required_tenant_field_is_required(
    client: httpx.AsyncClient, admin_headers: dict[str, str], missing: str
) -> None:
    body = {"id": new_tenant_id(), "name": "Acme", "country": "IND", "currency": "INR"}
    del body[missing]
    problem = assert_problem(
        await client.post("/v1/admin/tenants", json=body, headers=admin_headers), 422, "VALIDATION_FAILED"
    )
    assert ["body", missing] in [err["loc"] for err in problem["errors"]]


async def test_tenant_read_shows_the_current_wallet(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=4_200)
    read = (await client.get(f"/v1/admin/tenants/{tenant['id']}", headers=admin_headers)).json()
    assert read["wallet"]["balance"] == money(4_200, "USD")
    assert read["wallet"]["available"] == money(4_200, "USD")


async def test_tenant_list_walks_every_tenant_once_in_id_order(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    mine = {(await create_tenant())["id"] for _ in range(5)}
    small_pages = await walk_tenants(client, admin_headers, limit=2)
    ids = [t["id"] for t in small_pages]
    assert len(ids) == len(set(ids)), "a tenant appeared on two pages"
    assert ids == sorted(ids)
    assert mine <= set(ids)
    big_pages = await walk_tenants(client, admin_headers, limit=500)
    assert [t["id"] for t in big_pages] == ids


async def test_tenant_list_limit_caps_the_page(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    for _ in range(3):
        await create_tenant()
    page = (await client.get("/v1/admin/tenants", params={"limit": 1}, headers=admin_headers)).json()
    assert len(page["data"]) == 1
    assert page["next_cursor"]
    following = (
        await client.get(
            "/v1/admin/tenants", params={"limit": 1, "cursor": page["next_cursor"]}, headers=admin_headers
        )
    ).json()
    assert following["data"][0]["id"] > page["data"][0]["id"]


@pytest.mark.parametrize("limit", ["0", "-1", "501", "many", "1.5"])
async def test_tenant_list_limit_out_of_bounds_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], limit: str
) -> None:
    response = await client.get("/v1/admin/tenants", params={"limit": limit}, headers=admin_headers)
    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    "cursor", ["not-a-cursor!", "", cursor_of("int:5"), cursor_of("str:"), cursor_of("nonsense"), "====="]
)
async def test_tenant_list_bad_cursor_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], cursor: str
) -> None:
    response = await client.get("/v1/admin/tenants", params={"cursor": cursor}, headers=admin_headers)
    assert_problem(response, 422, "VALIDATION_FAILED")


async def test_tenant_list_flagged_filter(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory, db: Database
) -> None:
    flagged = await create_tenant()
    clean = await create_tenant()
    await set_flagged(db, flagged["id"])

    only_flagged = await walk_tenants(client, admin_headers, limit=3, flagged="true")
    assert flagged["id"] in {t["id"] for t in only_flagged}
    assert clean["id"] not in {t["id"] for t in only_flagged}
    assert all(t["wallet"]["flagged"] is True for t in only_flagged)

    not_flagged = await walk_tenants(client, admin_headers, limit=50, flagged="false")
    assert clean["id"] in {t["id"] for t in not_flagged}
    assert flagged["id"] not in {t["id"] for t in not_flagged}
    assert all(t["wallet"]["flagged"] is False for t in not_flagged)

    read = (await client.get(f"/v1/admin/tenants/{flagged['id']}/wallet", headers=admin_headers)).json()
    assert read["flagged"] is True


async def test_tenant_list_low_balance_filter(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    low = await create_tenant(low_balance_threshold=1_000, balance=500)
    healthy = await create_tenant(low_balance_threshold=1_000, balance=2_000)
    exactly_at = await create_tenant(low_balance_threshold=1_000, balance=1_000)
    no_threshold = await create_tenant(balance=0)

    low_ids = {t["id"] for t in await walk_tenants(client, admin_headers, limit=7, low_balance="true")}
    assert low["id"] in low_ids
    assert not low_ids & {healthy["id"], exactly_at["id"], no_threshold["id"]}

    rest = await walk_tenants(client, admin_headers, limit=50, low_balance="false")
    rest_ids = {t["id"] for t in rest}
    assert {healthy["id"], exactly_at["id"], no_threshold["id"]} <= rest_ids
    assert low["id"] not in rest_ids
    assert all(t["wallet"]["below_threshold"] is False for t in rest)


async def test_tenant_list_filters_combine_with_pagination(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory, db: Database
) -> None:
    flagged_low = [await create_tenant(low_balance_threshold=100) for _ in range(3)]
    flagged_healthy = await create_tenant(low_balance_threshold=100, balance=500)
    for tenant in [*flagged_low, flagged_healthy]:
        await set_flagged(db, tenant["id"])
    walked = await walk_tenants(client, admin_headers, limit=1, flagged="true", low_balance="true")
    ids = [t["id"] for t in walked]
    assert len(ids) == len(set(ids))
    assert {t["id"] for t in flagged_low} <= set(ids)
    assert flagged_healthy["id"] not in ids
    assert all(t["wallet"]["flagged"] and t["wallet"]["below_threshold"] for t in walked)


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
async def test_tenant_list_filter_that_is_not_a_boolean_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], value: str
) -> None:
    for name in ("flagged", "low_balance"):
        response = await client.get("/v1/admin/tenants", params={name: value}, headers=admin_headers)
        assert_problem(response, 422, "VALIDATION_FAILED")
