"""Tenant isolation: a tenant's callers see only that tenant, and never do admin work, on every route."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import bearer, make_token, member_headers, owner_headers, sign_claims
from tests.fixtures.problems import assert_problem
from tests.fixtures.routes import route_table
from tests.fixtures.tenants import TenantFactory, new_tenant_id

# Routes that do not take a bearer credential at all (DESIGN.md): providers sign webhooks, browsers come
# back from Stripe, anyone may read plans, ops probe health. Everything else under /v1 must answer 401.
PUBLIC_ROUTES = {
    ("GET", "/v1/plans"),
    ("GET", "/v1/topups/stripe/return"),
    ("POST", "/v1/webhooks/stripe"),
    ("POST", "/v1/webhooks/razorpay"),
}


class World:
    """Two tenants with money and history, and a revocable API key: what a stray request could damage."""

    def __init__(self, a: dict[str, Any], b: dict[str, Any], key_id: str) -> None:
        self.a = a
        self.b = b
        self.key_id = key_id


@pytest.fixture
async def world(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> World:
    a = await create_tenant(currency="INR", balance=1_000)
    b = await create_tenant(currency="USD", country="USA", balance=2_000)
    await client.post(
        f"/v1/admin/tenants/{b['id']}/adjustments",
        json={"amount": -300, "reason": "b-only secret reason"},
        headers=admin_headers,
    )
    key = await client.post(
        "/v1/admin/api-keys", json={"scopes": ["usage:write"], "tenant_id": b["id"]}, headers=admin_headers
    )
    assert key.status_code == 201, key.text
    return World(a, b, key.json()["id"])


Request = Callable[[httpx.AsyncClient, dict[str, str], World], Awaitable[httpx.Response]]

# One legitimate-looking request per admin route, aimed at tenant B. A tenant credential must be refused
# on each. A new /v1/admin route without an entry here makes test_every_admin_route_is_covered fail.
ADMIN_REQUESTS: dict[tuple[str, str], Request] = {
    ("POST", "/v1/admin/tenants"): lambda c, h, w: c.post(
        "/v1/admin/tenants",
        json={"id": new_tenant_id(), "name": "Sneaky", "country": "IND", "currency": "INR"},
        headers=h,
    ),
    ("GET", "/v1/admin/tenants"): lambda c, h, w: c.get("/v1/admin/tenants", headers=h),
    ("GET", "/v1/admin/tenants/{tenant_id}"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}", headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/wallet"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/wallet", headers=h
    ),
    ("POST", "/v1/admin/tenants/{tenant_id}/adjustments"): lambda c, h, w: c.post(
        f"/v1/admin/tenants/{w.b['id']}/adjustments", json={"amount": -2_000, "reason": "drain"}, headers=h
    ),
    ("GET", "/v1/admin/transactions"): lambda c, h, w: c.get(
        "/v1/admin/transactions", params={"tenant_id": w.b["id"]}, headers=h
    ),
    ("GET", "/v1/admin/events"): lambda c, h, w: c.get(
        "/v1/admin/events", params={"tenant_id": w.b["id"]}, headers=h
    ),
    ("POST", "/v1/admin/api-keys"): lambda c, h, w: c.post(
        "/v1/admin/api-keys", json={"scopes": ["admin"]}, headers=h
    ),
    ("GET", "/v1/admin/api-keys"): lambda c, h, w: c.get("/v1/admin/api-keys", headers=h),
    ("DELETE", "/v1/admin/api-keys/{key_id}"): lambda c, h, w: c.delete(
        f"/v1/admin/api-keys/{w.key_id}", headers=h
    ),
    ("GET", "/v1/admin/topups/{topup_id}"): lambda c, h, w: c.get("/v1/admin/topups/top_unknown", headers=h),
    ("POST", "/v1/admin/topups/{topup_id}/refunds"): lambda c, h, w: c.post(
        "/v1/admin/topups/top_unknown/refunds", json={"reason": "sneaky"}, headers=h
    ),
    ("POST", "/v1/admin/bonus-rules"): lambda c, h, w: c.post(
        "/v1/admin/bonus-rules", json={"currency": "ISK", "min_amount": 0, "percent": "50"}, headers=h
    ),
    ("GET", "/v1/admin/bonus-rules"): lambda c, h, w: c.get("/v1/admin/bonus-rules", headers=h),
    ("PATCH", "/v1/admin/bonus-rules/{rule_id}"): lambda c, h, w: c.patch(
        "/v1/admin/bonus-rules/bonus_unknown", json={"active": False}, headers=h
    ),
    ("PATCH", "/v1/admin/tenants/{tenant_id}"): lambda c, h, w: c.patch(
        f"/v1/admin/tenants/{w.b['id']}", json={"max_concurrent_calls": 1}, headers=h
    ),
    ("PUT", "/v1/admin/tenants/{tenant_id}/subscription"): lambda c, h, w: c.put(
        f"/v1/admin/tenants/{w.b['id']}/subscription", json={"plan_id": "plan_unknown"}, headers=h
    ),
    ("POST", "/v1/admin/plans"): lambda c, h, w: c.post(
        "/v1/admin/plans",
        json={"name": "Sneaky", "currency": "INR", "monthly_price": 0, "per_minute_rate": "0"},
        headers=h,
    ),
    ("GET", "/v1/admin/plans"): lambda c, h, w: c.get("/v1/admin/plans", headers=h),
    ("PATCH", "/v1/admin/plans/{plan_id}"): lambda c, h, w: c.patch(
        "/v1/admin/plans/plan_unknown", json={"active": False}, headers=h
    ),
    ("GET", "/v1/admin/billing-defaults/{currency}"): lambda c, h, w: c.get(
        "/v1/admin/billing-defaults/INR", headers=h
    ),
    ("PUT", "/v1/admin/billing-defaults/{currency}"): lambda c, h, w: c.put(
        "/v1/admin/billing-defaults/CHF",
        json={"per_minute_rate": "1", "minimum_balance": 0},
        headers=h,
    ),
    ("POST", "/v1/admin/charges/{charge_id}/refunds"): lambda c, h, w: c.post(
        "/v1/admin/charges/999999999999/refunds", json={"reason": "sneaky"}, headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/billing-contacts"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/billing-contacts", headers=h
    ),
    ("PUT", "/v1/admin/tenants/{tenant_id}/billing-contacts"): lambda c, h, w: c.put(
        f"/v1/admin/tenants/{w.b['id']}/billing-contacts", json={"emails": ["x@evil.example"]}, headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/auto-topup"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/auto-topup", headers=h
    ),
    ("PUT", "/v1/admin/tenants/{tenant_id}/auto-topup"): lambda c, h, w: c.put(
        f"/v1/admin/tenants/{w.b['id']}/auto-topup", json={"locked": True}, headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/notifications"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/notifications", headers=h
    ),
    # Documents and billing details (a statement of a month before B existed, a document that does not).
    ("GET", "/v1/admin/tenants/{tenant_id}/billing-details"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/billing-details", headers=h
    ),
    ("PUT", "/v1/admin/tenants/{tenant_id}/billing-details"): lambda c, h, w: c.put(
        f"/v1/admin/tenants/{w.b['id']}/billing-details",
        json={"legal_name": "Evil", "country": "IND"},
        headers=h,
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/invoices"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/invoices", headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/invoices/{document_id}"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/invoices/doc_{'0' * 32}", headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/invoices/{document_id}.pdf"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/invoices/doc_{'0' * 32}.pdf", headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/statements"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/statements", headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/statements/{period}"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/statements/2021-01", headers=h
    ),
    ("GET", "/v1/admin/tenants/{tenant_id}/statements/{period}.pdf"): lambda c, h, w: c.get(
        f"/v1/admin/tenants/{w.b['id']}/statements/2021-01.pdf", headers=h
    ),
    # Webhook endpoints (an admin's is made disabled, for tenant B only: it never receives anything).
    ("POST", "/v1/admin/webhook-endpoints"): lambda c, h, w: c.post(
        "/v1/admin/webhook-endpoints",
        json={"url": "https://93.184.215.14/hooks", "tenant_id": w.b["id"], "enabled": False},
        headers=h,
    ),
    ("GET", "/v1/admin/webhook-endpoints"): lambda c, h, w: c.get("/v1/admin/webhook-endpoints", headers=h),
    ("GET", "/v1/admin/webhook-endpoints/{endpoint_id}"): lambda c, h, w: c.get(
        f"/v1/admin/webhook-endpoints/whe_{'0' * 24}", headers=h
    ),
    ("PATCH", "/v1/admin/webhook-endpoints/{endpoint_id}"): lambda c, h, w: c.patch(
        f"/v1/admin/webhook-endpoints/whe_{'0' * 24}", json={"enabled": True}, headers=h
    ),
    ("DELETE", "/v1/admin/webhook-endpoints/{endpoint_id}"): lambda c, h, w: c.delete(
        f"/v1/admin/webhook-endpoints/whe_{'0' * 24}", headers=h
    ),
    ("POST", "/v1/admin/webhook-endpoints/{endpoint_id}/rotate-secret"): lambda c, h, w: c.post(
        f"/v1/admin/webhook-endpoints/whe_{'0' * 24}/rotate-secret", headers=h
    ),
    ("GET", "/v1/admin/events/{event_id}"): lambda c, h, w: c.get(
        f"/v1/admin/events/evt_{'0' * 32}", headers=h
    ),
    ("POST", "/v1/admin/events/{event_id}/redeliver"): lambda c, h, w: c.post(
        f"/v1/admin/events/evt_{'0' * 32}/redeliver", headers=h
    ),
}


def admin_routes(app: Any) -> set[tuple[str, str]]:
    return {(method, path) for method, path in route_table(app) if path.startswith("/v1/admin")}


def test_every_admin_route_is_covered(app: Any) -> None:
    routes = admin_routes(app)
    assert ("GET", "/v1/admin/tenants") in routes  # the route walk found the routes at all
    uncovered = routes - set(ADMIN_REQUESTS)
    assert not uncovered, (
        f"admin routes with no isolation check: add them to ADMIN_REQUESTS: {sorted(uncovered)}"
    )
    stale = set(ADMIN_REQUESTS) - routes
    assert not stale, f"ADMIN_REQUESTS names routes the app does not serve: {sorted(stale)}"


async def tenant_credentials(
    client: httpx.AsyncClient, admin_headers: dict[str, str], world: World
) -> dict[str, dict[str, str]]:
    """Every kind of credential a tenant can hold: its users' JWTs and its own API keys, all scopes."""
    key = await client.post(
        "/v1/admin/api-keys",
        json={"scopes": ["wallet:read", "wallet:write", "usage:write"], "tenant_id": world.a["id"]},
        headers=admin_headers,
    )
    assert key.status_code == 201, key.text
    return {
        "member of A": member_headers(world.a["id"]),
        "owner of A": owner_headers(world.a["id"]),
        "owner of B": owner_headers(world.b["id"]),
        "A's API key": bearer(key.json()["key"]),
    }


async def snapshot(client: httpx.AsyncClient, admin_headers: dict[str, str], world: World) -> dict[str, Any]:
    tenants = (await client.get("/v1/admin/tenants", params={"limit": 500}, headers=admin_headers)).json()
    keys = (await client.get("/v1/admin/api-keys", headers=admin_headers)).json()
    b_rows = (
        await client.get("/v1/admin/transactions", params={"tenant_id": world.b["id"]}, headers=admin_headers)
    ).json()
    b_wallet = (await client.get(f"/v1/admin/tenants/{world.b['id']}/wallet", headers=admin_headers)).json()
    b_wallet.pop("updated_at", None)
    return {
        "tenant_ids": [t["id"] for t in tenants["data"]],
        "keys": keys,
        "b_rows": b_rows,
        "b_wallet": b_wallet,
    }


async def test_tenant_credentials_are_forbidden_on_every_admin_route(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str], world: World
) -> None:
    before = await snapshot(client, admin_headers, world)
    credentials = await tenant_credentials(client, admin_headers, world)
    before_keys = (await client.get("/v1/admin/api-keys", headers=admin_headers)).json()
    for route in sorted(admin_routes(app)):
        request = ADMIN_REQUESTS[route]
        for who, headers in credentials.items():
            response = await request(client, headers, world)
            problem = assert_problem(response, 403, "FORBIDDEN")
            # The refusal carries nothing of B's: no balance, no rows, no reason text.
            assert "balance" not in response.text, (route, who)
            assert "b-only secret reason" not in response.text, (route, who)
            assert set(problem) <= {"type", "title", "status", "code", "detail", "instance", "request_id"}
    after = await snapshot(client, admin_headers, world)
    assert after["b_wallet"] == before["b_wallet"]
    assert after["b_rows"] == before["b_rows"]
    assert after["tenant_ids"] == before["tenant_ids"]
    assert (await client.get("/v1/admin/api-keys", headers=admin_headers)).json() == before_keys
    revoked = [k for k in before_keys if k["id"] == world.key_id]
    assert revoked
    assert revoked[0]["revoked_at"] is None


async def test_admin_credentials_reach_every_admin_route(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str], world: World
) -> None:
    # The other side of the check above: the same requests are not refused for an admin, so the 403s
    # come from the credential and not from a broken request.
    for route in sorted(admin_routes(app)):
        response = await ADMIN_REQUESTS[route](client, admin_headers, world)
        # 404: the top-up and bonus-rule requests name ids that do not exist; the point is that the
        # credential is accepted (never 401 or 403).
        assert response.status_code in (200, 201, 402, 404), (route, response.text)


async def test_missing_credentials_are_unauthorized_on_every_protected_route(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    routes = sorted(
        (method, path)
        for method, path in route_table(app)
        if path.startswith("/v1/") and (method, path) not in PUBLIC_ROUTES
    )
    assert ("GET", "/v1/wallet") in routes
    for method, template in routes:
        path = (
            template.replace("{tenant_id}", world.b["id"])
            .replace("{key_id}", world.key_id)
            .replace("{topup_id}", "top_unknown")
            .replace("{rule_id}", "bonus_unknown")
            .replace("{plan_id}", "plan_unknown")
            .replace("{currency}", "INR")
            .replace("{charge_id}", "1")
            .replace("{call_id}", "call-1")
            .replace("{endpoint_id}", "whe_" + "0" * 24)
            .replace("{event_id}", "evt_" + "0" * 32)
            .replace("{document_id}", "doc_" + "0" * 32)
            .replace("{period}", "2021-01")
            .replace("{payment_method_id}", "pm_unknown")
            .replace("{auto_topup_id}", "at_" + "0" * 24)
        )
        assert "{" not in path, f"no value for a parameter of {template}"
        kwargs: dict[str, Any] = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic YTpi"}):
            response = await client.request(method, path, headers=headers, **kwargs)
            assert_problem(response, 401, "UNAUTHORIZED")
            assert response.headers["www-authenticate"].lower().startswith("bearer"), (method, path)


@pytest.mark.parametrize(
    "token",
    [
        make_token(role="owner", tenant_id="t-any", expires_in=-3600),
        make_token(role="owner", tenant_id="t-any", secret="someone-elses-secret-of-forty-characters!!"),
        make_token(role="super_admin", secret="someone-elses-secret-of-forty-characters!!"),
        make_token(role="owner"),  # a tenant role that names no tenant
        make_token(role="root", tenant_id="t-any"),
        sign_claims(
            {"sub": "user-1", "role": "owner", "tenant_id": ["t-a", "t-b"], "exp": int(time.time()) + 3600}
        ),
    ],
    ids=["expired", "forged-owner", "forged-admin", "no-tenant", "unknown-role", "tenant-list"],
)
async def test_invalid_tokens_are_unauthorized(client: httpx.AsyncClient, token: str) -> None:
    for path in ("/v1/wallet", "/v1/transactions", "/v1/admin/tenants", "/v1/admin/transactions"):
        response = await client.get(path, headers=bearer(token))
        assert_problem(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"].lower().startswith("bearer")


async def test_a_tenant_sees_only_its_own_wallet(
    client: httpx.AsyncClient, world: World, admin_headers: dict[str, str]
) -> None:
    for headers in (member_headers(world.a["id"]), owner_headers(world.a["id"])):
        wallet = (await client.get("/v1/wallet", headers=headers)).json()
        assert wallet["tenant_id"] == world.a["id"]
        assert wallet["balance"] == {"amount": 1_000, "currency": "INR"}
        # Naming another tenant in the query changes nothing: a tenant route acts on the caller's own tenant.
        named = await client.get("/v1/wallet", params={"tenant_id": world.b["id"]}, headers=headers)
        assert named.json()["tenant_id"] == world.a["id"]
    b_wallet = (await client.get("/v1/wallet", headers=member_headers(world.b["id"]))).json()
    assert b_wallet["balance"] == {"amount": 1_700, "currency": "USD"}


async def test_a_tenant_history_never_shows_another_tenants_rows(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = member_headers(world.a["id"])
    b_rows = (await client.get("/v1/transactions", headers=member_headers(world.b["id"]))).json()["data"]
    assert len(b_rows) == 2
    b_ids = {r["id"] for r in b_rows}

    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1, "tenant_id": world.b["id"]}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/transactions", params=params, headers=headers)).json()
        rows.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [r["tenant_id"] for r in rows] == [world.a["id"]]
    assert not b_ids & {r["id"] for r in rows}

    # B's reference id, and a cursor from B's pages, still only ever reach A's rows.
    by_reference = await client.get(
        "/v1/transactions", params={"reference_id": b_rows[0]["reference"]["id"]}, headers=headers
    )
    assert by_reference.json()["data"] == []
    b_page = (
        await client.get("/v1/transactions", params={"limit": 1}, headers=member_headers(world.b["id"]))
    ).json()
    assert b_page["next_cursor"]
    with_b_cursor = await client.get(
        "/v1/transactions", params={"cursor": b_page["next_cursor"], "limit": 500}, headers=headers
    )
    assert with_b_cursor.status_code == 200, with_b_cursor.text
    assert all(r["tenant_id"] == world.a["id"] for r in with_b_cursor.json()["data"])


async def test_a_tenant_csv_never_contains_another_tenants_rows(
    client: httpx.AsyncClient, world: World
) -> None:
    for headers in (member_headers(world.a["id"]), owner_headers(world.a["id"])):
        for params in ({}, {"tenant_id": world.b["id"]}, {"type": "adjustment"}):
            response = await client.get("/v1/transactions/export.csv", params=params, headers=headers)
            assert response.status_code == 200
            assert world.b["id"] not in response.text
            assert "b-only secret reason" not in response.text
            assert "USD" not in response.text
            lines = list(csv.DictReader(io.StringIO(response.text)))
            assert len(lines) == 1
            assert lines[0]["currency"] == "INR"
    b_csv = await client.get("/v1/transactions/export.csv", headers=member_headers(world.b["id"]))
    assert "b-only secret reason" in b_csv.text


async def test_a_tenant_api_key_sees_only_its_own_tenant(
    client: httpx.AsyncClient, world: World, admin_headers: dict[str, str]
) -> None:
    key = await client.post(
        "/v1/admin/api-keys",
        json={"scopes": ["wallet:read"], "tenant_id": world.a["id"]},
        headers=admin_headers,
    )
    headers = bearer(key.json()["key"])
    wallet = (await client.get("/v1/wallet", headers=headers)).json()
    assert wallet["tenant_id"] == world.a["id"]
    rows = (await client.get("/v1/transactions", headers=headers)).json()["data"]
    assert {r["tenant_id"] for r in rows} == {world.a["id"]}
    csv_text = (await client.get("/v1/transactions/export.csv", headers=headers)).text
    assert world.b["id"] not in csv_text


async def test_a_key_without_wallet_read_cannot_read_the_wallet(
    client: httpx.AsyncClient, world: World
) -> None:
    # A telephony key: it may post usage, never read money.
    admin_key = await client.post(
        "/v1/admin/api-keys",
        json={"scopes": ["usage:write"], "tenant_id": world.a["id"]},
        headers=bearer(make_token(role="super_admin", sub="admin-iso")),
    )
    headers = bearer(admin_key.json()["key"])
    for path in ("/v1/wallet", "/v1/transactions", "/v1/transactions/export.csv"):
        assert_problem(await client.get(path, headers=headers), 403, "FORBIDDEN")


async def test_platform_admin_credentials_cannot_use_tenant_routes_without_a_tenant(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for path in ("/v1/wallet", "/v1/transactions", "/v1/transactions/export.csv"):
        assert_problem(await client.get(path, headers=admin_headers), 403, "FORBIDDEN")


async def test_a_revoked_tenant_key_is_refused(
    client: httpx.AsyncClient, world: World, admin_headers: dict[str, str]
) -> None:
    key = (
        await client.post(
            "/v1/admin/api-keys",
            json={"scopes": ["wallet:read"], "tenant_id": world.a["id"]},
            headers=admin_headers,
        )
    ).json()
    assert (await client.get("/v1/wallet", headers=bearer(key["key"]))).status_code == 200
    assert (await client.delete(f"/v1/admin/api-keys/{key['id']}", headers=admin_headers)).status_code == 200
    assert_problem(await client.get("/v1/wallet", headers=bearer(key["key"])), 401, "UNAUTHORIZED")
