"""Billing contacts: who gets the e-mails. Owners and admins set them, members read them, every other
tenant is kept out; addresses are checked, normalised and deduplicated, and a bad one is a 422. Admins
read what was e-mailed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.notifications import emailed_event
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from walletsvc.db.engine import Database
from walletsvc.domain.events import EventType, money

MINE = "/v1/billing-contacts"


def admin_path(tenant_id: str) -> str:
    return f"/v1/admin/tenants/{tenant_id}/billing-contacts"


async def test_an_owner_sets_them_normalised_and_a_member_reads_them(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    owner, member = owner_headers(tenant["id"]), member_headers(tenant["id"])
    empty = await client.get(MINE, headers=member)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"tenant_id": tenant["id"], "emails": [], "updated_by": None, "updated_at": None}

    emails = [" Billing@ACME.Example ", "billing@acme.example", "cfo@acme.example", "ops@münchen.example"]
    put = await client.put(MINE, json={"emails": emails}, headers=owner)
    assert put.status_code == 200, put.text
    expected = ["Billing@acme.example", "cfo@acme.example", "ops@xn--mnchen-3ya.example"]
    assert put.json()["emails"] == expected  # domains lower-cased, duplicates dropped, order kept
    assert put.json()["updated_by"].startswith("user:")
    read = await client.get(MINE, headers=member)
    assert read.json()["emails"] == expected

    cleared = await client.put(MINE, json={"emails": []}, headers=owner)
    assert cleared.status_code == 200, cleared.text
    assert (await client.get(MINE, headers=member)).json()["emails"] == []


async def test_a_member_may_not_change_them(client: httpx.AsyncClient, create_tenant: TenantFactory) -> None:
    tenant = await create_tenant()
    refused = await client.put(
        MINE, json={"emails": ["a@acme.example"]}, headers=member_headers(tenant["id"])
    )
    assert_problem(refused, 403, "FORBIDDEN")
    assert (await client.get(MINE, headers=member_headers(tenant["id"]))).json()["emails"] == []


async def test_admins_set_and_read_any_tenants(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant()
    put = await client.put(
        admin_path(tenant["id"]), json={"emails": ["a@acme.example"]}, headers=admin_headers
    )
    assert put.status_code == 200, put.text
    assert put.json()["updated_by"] == "user:admin-1"
    got = await client.get(admin_path(tenant["id"]), headers=admin_headers)
    assert got.json()["emails"] == ["a@acme.example"]
    mine = await client.get(MINE, headers=owner_headers(tenant["id"]))
    assert mine.json()["emails"] == ["a@acme.example"]


async def test_tenants_are_kept_apart(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    a, b = await create_tenant(), await create_tenant()
    await client.put(admin_path(a["id"]), json={"emails": ["a@acme.example"]}, headers=admin_headers)
    assert (await client.get(MINE, headers=owner_headers(b["id"]))).json()["emails"] == []
    for method in ("GET", "PUT"):
        refused = await client.request(
            method, admin_path(a["id"]), json={"emails": ["x@evil.example"]}, headers=owner_headers(b["id"])
        )
        assert_problem(refused, 403, "FORBIDDEN")
    assert (await client.get(admin_path(a["id"]), headers=admin_headers)).json()["emails"] == [
        "a@acme.example"
    ]


async def test_an_unknown_tenant_is_not_found(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    missing = new_tenant_id()
    assert_problem(await client.get(admin_path(missing), headers=admin_headers), 404, "NOT_FOUND")
    put = await client.put(admin_path(missing), json={"emails": ["a@acme.example"]}, headers=admin_headers)
    assert_problem(put, 404, "NOT_FOUND")
    # A token naming a tenant that does not exist: 404, never a 500 from the foreign key.
    assert_problem(
        await client.put(MINE, json={"emails": ["a@acme.example"]}, headers=owner_headers(missing)),
        404,
        "NOT_FOUND",
    )


async def test_credentials_are_required(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(MINE), 401, "UNAUTHORIZED")
    assert_problem(await client.put(MINE, json={"emails": []}), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("emails", "loc"),
    [
        (["good@acme.example", "not-an-address"], ["body", "emails", "1"]),
        (["no-dot@localhost"], ["body", "emails", "0"]),
        (["two@@acme.example"], ["body", "emails", "0"]),
        (["ünicode-local@acme.example"], ["body", "emails", "0"]),
        (["a@acme.example\nBcc: victim@example.com"], ["body", "emails", "0"]),
    ],
)
async def test_a_bad_address_is_refused_by_its_index(
    client: httpx.AsyncClient, create_tenant: TenantFactory, emails: list[str], loc: list[str]
) -> None:
    tenant = await create_tenant()
    owner = owner_headers(tenant["id"])
    refused = assert_problem(
        await client.put(MINE, json={"emails": emails}, headers=owner), 422, "VALIDATION_FAILED"
    )
    assert refused["errors"][0]["loc"] == loc
    assert (await client.get(MINE, headers=owner)).json()["emails"] == []  # nothing half written


@pytest.mark.parametrize(
    "body",
    [
        {"emails": [f"user{i}@acme.example" for i in range(11)]},
        {"emails": "a@acme.example"},
        {"emails": [5]},
        {"emails": [None]},
        {"emails": [""]},
        {"emails": ["a" * 330 + "@acme.example"]},
        {"emails": ["a\u0000b@acme.example"]},
        {},
        {"emails": [], "extra": 1},
    ],
)
async def test_a_malformed_body_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, body: dict[str, Any]
) -> None:
    tenant = await create_tenant()
    owner = owner_headers(tenant["id"])
    assert_problem(await client.put(MINE, json=body, headers=owner), 422, "VALIDATION_FAILED")


async def test_ten_addresses_are_allowed_and_duplicates_do_not_count(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    ten = [f"user{i}@acme.example" for i in range(10)]
    put = await client.put(
        MINE,
        json={"emails": [*ten[:5], "USER0@acme.example", *ten[5:]][:10]},
        headers=owner_headers(tenant["id"]),
    )
    assert put.status_code == 200, put.text
    assert put.json()["emails"] == [*ten[:5], *ten[5:9]]
    put = await client.put(MINE, json={"emails": ten}, headers=owner_headers(tenant["id"]))
    assert put.json()["emails"] == ten


async def test_admins_see_the_emails_sent_to_a_tenant(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant()
    await client.put(
        admin_path(tenant["id"]), json={"emails": ["a@acme.example", "b@acme.example"]}, headers=admin_headers
    )
    first = await emailed_event(db, tenant["id"], EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    second = await emailed_event(
        db, tenant["id"], EventType.WALLET_LOW_BALANCE, {"available": money(5, "INR")}
    )
    path = f"/v1/admin/tenants/{tenant['id']}/notifications"

    listed = await client.get(path, headers=admin_headers)
    assert listed.status_code == 200, listed.text
    rows = listed.json()["data"]
    assert [(r["event_id"], r["recipient"]) for r in rows] == [
        (second, "b@acme.example"),
        (second, "a@acme.example"),
        (first, "b@acme.example"),
        (first, "a@acme.example"),
    ]
    assert {r["status"] for r in rows} == {"queued"}
    assert rows[0]["event_type"] == "wallet.low_balance"

    paged = await client.get(path, params={"limit": 3}, headers=admin_headers)
    rest = await client.get(
        path, params={"limit": 3, "cursor": paged.json()["next_cursor"]}, headers=admin_headers
    )
    assert [r["id"] for r in paged.json()["data"] + rest.json()["data"]] == [r["id"] for r in rows]
    assert rest.json()["next_cursor"] is None

    only = await client.get(path, params={"event_id": first}, headers=admin_headers)
    assert {r["event_id"] for r in only.json()["data"]} == {first}

    assert_problem(await client.get(path, headers=owner_headers(tenant["id"])), 403, "FORBIDDEN")
    assert_problem(
        await client.get(path, params={"cursor": "!!"}, headers=admin_headers), 422, "VALIDATION_FAILED"
    )
    missing = f"/v1/admin/tenants/{new_tenant_id()}/notifications"
    assert_problem(await client.get(missing, headers=admin_headers), 404, "NOT_FOUND")
