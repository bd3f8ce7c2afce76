"""Idempotency-Key: a retry returns the first answer, never moves money twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import fastapi.routing
import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.auth import bearer, make_token, owner_headers
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from walletsvc.db.engine import Database
from walletsvc.db.repositories.idempotency import Claim, IdempotencyStore
from walletsvc.domain import idempotency


def _key() -> str:
    return f"idem-{uuid.uuid4().hex}"


def _with_key(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def _balance(client: httpx.AsyncClient, tenant_id: str) -> int:
    response = await client.get("/v1/wallet", headers=owner_headers(tenant_id))
    assert response.status_code == 200, response.text
    amount: int = response.json()["balance"]["amount"]
    return amount


async def _adjustments(client: httpx.AsyncClient, tenant_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/transactions", headers=owner_headers(tenant_id), params={"type": "adjustment"}
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


async def _claim_as_the_dependency_would(
    store: IdempotencyStore, *, actor: str, path: str, body: dict[str, Any], key: str
) -> Claim:
    """Claim a key exactly as the Idempotency-Key dependency would for this (admin) caller and request."""
    raw = json.dumps(body).encode()
    claim = await store.claim(
        scope=f"{actor}@*",
        key=key,
        tenant_id=None,
        method="POST",
        path=path,
        fingerprint=idempotency.fingerprint("POST", path, raw),
    )
    assert isinstance(claim, Claim)
    return claim


async def test_same_key_same_body_replays_and_credits_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=1_000)
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    body = {"amount": 2_500, "reason": "goodwill credit"}

    first = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    # Key order and spacing don't make it a different request.
    same_body_reordered = json.dumps({"reason": "goodwill credit", "amount": 2_500}, indent=2)
    second = await client.post(
        path,
        content=same_body_reordered,
        headers={**_with_key(admin_headers, key), "Content-Type": "application/json"},
    )
    third = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    for replay in (second, third):
        assert replay.status_code == 201, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
        assert replay.headers["content-type"] == first.headers["content-type"]

    assert await _balance(client, tenant["id"]) == 3_500
    rows = await _adjustments(client, tenant["id"])
    assert [r["amount"]["amount"] for r in rows] == [2_500, 1_000]
    assert rows[0]["id"] == first.json()["transaction"]["id"]


async def test_requests_without_a_key_are_not_deduplicated(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    for _ in range(2):
        response = await client.post(path, json={"amount": 10, "reason": "no key"}, headers=admin_headers)
        assert response.status_code == 201
    assert await _balance(client, tenant["id"]) == 20


async def test_same_key_different_body_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    other = await create_tenant()
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    first = await client.post(
        path, json={"amount": 100, "reason": "one"}, headers=_with_key(admin_headers, key)
    )
    assert first.status_code == 201

    for method_path, body in (
        (path, {"amount": 101, "reason": "one"}),
        (path, {"amount": 100, "reason": "two"}),
        # The same body sent to another tenant is a different request too.
        (f"/v1/admin/tenants/{other['id']}/adjustments", {"amount": 100, "reason": "one"}),
    ):
        response = await client.post(method_path, json=body, headers=_with_key(admin_headers, key))
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert "idempotent-replayed" not in response.headers

    assert await _balance(client, tenant["id"]) == 100
    assert await _balance(client, other["id"]) == 0


async def test_same_key_while_first_is_in_flight_is_409(
    client: httpx.AsyncClient, app: Any, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    body = {"amount": 700, "reason": "in flight"}
    # admin_headers' token has sub "admin-1": this is the claim its first request would hold mid-flight.
    claim = await _claim_as_the_dependency_would(
        app.state.idempotency, actor="user:admin-1", path=path, body=body, key=key
    )

    response = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "IDEMPOTENCY_IN_PROGRESS"
    # A different body under an in-flight key is still a reuse, not a wait.
    response = await client.post(path, json={**body, "amount": 1}, headers=_with_key(admin_headers, key))
    assert response.status_code == 422
    assert response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await _balance(client, tenant["id"]) == 0

    # The first request fails unexpectedly and lets go of the key: the retry runs, once.
    await app.state.idempotency.release(claim)
    response = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert response.status_code == 201, response.text
    replay = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert replay.headers["idempotent-replayed"] == "true"
    assert await _balance(client, tenant["id"]) == 700


async def test_concurrent_requests_with_one_key_adjust_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    body = {"amount": 1_234, "reason": "stampede"}

    responses = await asyncio.gather(
        *(client.post(path, json=body, headers=_with_key(admin_headers, key)) for _ in range(20))
    )

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    originals = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    replays = [
        r for r in responses if r.status_code == 201 and r.headers.get("idempotent-replayed") == "true"
    ]
    in_progress = [r for r in responses if r.status_code == 409]
    assert len(originals) == 1
    assert len(originals) + len(replays) + len(in_progress) == 20
    assert all(r.json() == originals[0].json() for r in replays)
    assert all(r.json()["code"] == "IDEMPOTENCY_IN_PROGRESS" for r in in_progress)

    assert await _balance(client, tenant["id"]) == 1_234
    rows = await _adjustments(client, tenant["id"])
    assert len(rows) == 1
    # Once the dust settles, everyone gets the first answer.
    late = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert late.headers["idempotent-replayed"] == "true"
    assert late.json() == originals[0].json()


async def test_insufficient_funds_refusal_replays_as_the_same_402(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=50)
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    body = {"amount": -80, "reason": "chargeback"}

    first = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert first.status_code == 402, first.text
    assert first.json()["code"] == "INSUFFICIENT_FUNDS"

    # Even after money arrives, the same request gets the same answer: a retry is not a new attempt.
    topped_up = await client.post(path, json={"amount": 100, "reason": "top"}, headers=admin_headers)
    assert topped_up.status_code == 201
    again = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert again.status_code == 402
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"].startswith("application/problem+json")
    first_body, again_body = first.json(), again.json()
    assert again_body == first_body

    assert await _balance(client, tenant["id"]) == 150
    assert [r["amount"]["amount"] for r in await _adjustments(client, tenant["id"])] == [100, 50]


async def test_keys_are_scoped_per_caller(client: httpx.AsyncClient, create_tenant: TenantFactory) -> None:
    tenant = await create_tenant()
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    body = {"amount": 300, "reason": "same key, two admins"}
    alice = bearer(make_token(role="super_admin", sub=f"alice-{uuid.uuid4().hex[:6]}"))
    bob = bearer(make_token(role="super_admin", sub=f"bob-{uuid.uuid4().hex[:6]}"))

    first = await client.post(path, json=body, headers=_with_key(alice, key))
    second = await client.post(path, json=body, headers=_with_key(bob, key))
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert first.json()["transaction"]["id"] != second.json()["transaction"]["id"]
    assert await _balance(client, tenant["id"]) == 600

    # A different body under bob's key is not "reused" from alice's point of view either.
    other_body = await client.post(path, json={**body, "amount": 1}, headers=_with_key(alice, _key()))
    assert other_body.status_code == 201


async def test_same_key_from_two_tenants_does_not_collide(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    # Two tenants' own users (same subject name, different tenants) using the same key on a mutating route.
    first_tenant = await create_tenant()
    second_tenant = await create_tenant()
    key = _key()
    sub = f"portal-user-{uuid.uuid4().hex[:6]}"
    for tenant in (first_tenant, second_tenant):
        headers = bearer(make_token(role="owner", tenant_id=tenant["id"], sub=sub))
        # Owners may not create keys: the refusal is recorded per caller, and must not leak across tenants.
        response = await client.post(
            "/v1/admin/api-keys", json={"scopes": ["wallet:read"]}, headers=_with_key(headers, key)
        )
        assert response.status_code == 403, response.text
        assert "idempotent-replayed" not in response.headers

    # And two platform keys with the same key create two tenants.
    created = []
    for _ in range(2):
        api_key = await client.post("/v1/admin/api-keys", json={"scopes": ["admin"]}, headers=admin_headers)
        headers = bearer(api_key.json()["key"])
        tenant_id = new_tenant_id()
        response = await client.post(
            "/v1/admin/tenants",
            json={"id": tenant_id, "name": "Per key", "country": "USA", "currency": "USD"},
            headers=_with_key(headers, key),
        )
        assert response.status_code == 201, response.text
        assert "idempotent-replayed" not in response.headers
        created.append(tenant_id)
    for tenant_id in created:
        assert (await client.get(f"/v1/admin/tenants/{tenant_id}", headers=admin_headers)).status_code == 200


async def test_create_tenant_with_same_key_replays_instead_of_conflicting(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    key = _key()
    body = {"id": new_tenant_id(), "name": "Once Ltd", "country": "GBR", "currency": "GBP"}
    first = await client.post("/v1/admin/tenants", json=body, headers=_with_key(admin_headers, key))
    assert first.status_code == 201, first.text
    replay = await client.post("/v1/admin/tenants", json=body, headers=_with_key(admin_headers, key))
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()

    # Without the key, the same body is a second create: a conflict.
    conflict = await client.post("/v1/admin/tenants", json=body, headers=admin_headers)
    assert conflict.status_code == 409
    # With the key but another body: reuse.
    reused = await client.post(
        "/v1/admin/tenants", json={**body, "name": "Twice Ltd"}, headers=_with_key(admin_headers, key)
    )
    assert reused.status_code == 422
    assert reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    read = await client.get(f"/v1/admin/tenants/{body['id']}", headers=admin_headers)
    assert read.json()["name"] == "Once Ltd"


async def test_create_tenant_in_flight_key_is_409(
    client: httpx.AsyncClient, app: Any, admin_headers: dict[str, str]
) -> None:
    key = _key()
    body = {"id": new_tenant_id(), "name": "Racing Ltd", "country": "IND", "currency": "INR"}
    await _claim_as_the_dependency_would(
        app.state.idempotency, actor="user:admin-1", path="/v1/admin/tenants", body=body, key=key
    )
    response = await client.post("/v1/admin/tenants", json=body, headers=_with_key(admin_headers, key))
    assert response.status_code == 409
    assert response.json()["code"] == "IDEMPOTENCY_IN_PROGRESS"
    read = await client.get(f"/v1/admin/tenants/{body['id']}", headers=admin_headers)
    assert read.status_code == 404


@pytest.mark.parametrize("bad_key", ["k" * 256, "x" * 5000, "tab\there"])
async def test_invalid_key_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory, bad_key: str
) -> None:
    tenant = await create_tenant()
    response = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 10, "reason": "bad key"},
        headers=_with_key(admin_headers, bad_key),
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert await _balance(client, tenant["id"]) == 0


async def test_longest_allowed_key_works(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    key = uuid.uuid4().hex + "k" * (255 - 32)
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    body = {"amount": 10, "reason": "long key"}
    assert (await client.post(path, json=body, headers=_with_key(admin_headers, key))).status_code == 201
    replay = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert replay.headers["idempotent-replayed"] == "true"
    assert await _balance(client, tenant["id"]) == 10


async def test_key_whose_first_request_died_can_be_taken_over(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
) -> None:
    tenant = await create_tenant()
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    body = {"amount": 450, "reason": "retry after crash"}
    claim = await _claim_as_the_dependency_would(
        app.state.idempotency, actor="user:admin-1", path=path, body=body, key=key
    )
    # Still fresh: 409.
    response = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert response.status_code == 409

    # The first process died: its lock is older than the lock timeout (30 s in the test settings).
    async with db.engine.begin() as conn:
        updated = await conn.execute(
            text(
                "UPDATE idempotency_keys SET locked_at = now() - interval '1 hour' "
                "WHERE scope = :scope AND key = :key AND NOT completed"
            ),
            {"scope": claim.scope, "key": claim.key},
        )
        assert updated.rowcount == 1

    response = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers
    replay = await client.post(path, json=body, headers=_with_key(admin_headers, key))
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == response.json()
    assert await _balance(client, tenant["id"]) == 450
    assert len(await _adjustments(client, tenant["id"])) == 1


async def test_stale_key_with_a_different_body_is_still_reused(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
) -> None:
    tenant = await create_tenant()
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    claim = await _claim_as_the_dependency_would(
        app.state.idempotency, actor="user:admin-1", path=path, body={"amount": 1, "reason": "a"}, key=key
    )
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_keys SET locked_at = now() - interval '1 day' WHERE scope = :s AND key = :k"
            ),
            {"s": claim.scope, "k": claim.key},
        )
    response = await client.post(
        path, json={"amount": 2, "reason": "b"}, headers=_with_key(admin_headers, key)
    )
    assert response.status_code == 422
    assert response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await _balance(client, tenant["id"]) == 0


async def test_request_failing_validation_releases_its_key(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    key = _key()
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    invalid = await client.post(path, json={"amount": 5}, headers=_with_key(admin_headers, key))
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "VALIDATION_FAILED"
    # The key did not get stuck "in progress" behind the invalid request.
    fixed = await client.post(path, json={"amount": 5}, headers=_with_key(admin_headers, key))
    assert fixed.status_code == 422
    assert fixed.json()["code"] == "VALIDATION_FAILED"


# --- every mutating route takes the header -------------------------------------------------------

_EXEMPT_PREFIXES = ("/v1/webhooks/",)
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _mutating_v1_routes(app: Any) -> list[tuple[str, str]]:
    # Recent FastAPI keeps included routers lazily in app.routes; iter_route_contexts flattens them.
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = iter_contexts(app.routes) if iter_contexts is not None else app.routes
    found = []
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if not path or not methods or not path.startswith("/v1/") or path.startswith(_EXEMPT_PREFIXES):
            continue
        found += [(method, path) for method in sorted(set(methods) & _MUTATING)]
    return found


def test_every_mutating_route_declares_the_idempotency_key_header(app: Any) -> None:
    routes = _mutating_v1_routes(app)
    assert ("POST", "/v1/admin/tenants") in routes
    assert ("POST", "/v1/admin/tenants/{tenant_id}/adjustments") in routes
    paths = app.openapi()["paths"]
    missing = []
    for method, path in routes:
        parameters = paths[path][method.lower()].get("parameters", [])
        headers = {p["name"].lower() for p in parameters if p["in"] == "header"}
        if "idempotency-key" not in headers:
            missing.append(f"{method} {path}")
    assert not missing, f"routes without an Idempotency-Key header: {missing}"
