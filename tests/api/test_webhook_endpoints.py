"""Admin-managed webhook endpoints: the signing secret shown once (never in a replay, never in the database
in plain text), rotation, paging, changes, deletion, URL rules (SSRF) and who may use the routes."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from tests.fixtures.auth import owner_headers
from tests.fixtures.settings_apps import changed_settings, client_for
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from tests.fixtures.webhook_receiver import (
    WEBHOOK_SECRETS_KEY,
    commit_event,
    create_endpoint,
    webhook_settings,
)
from walletsvc.config import Settings
from walletsvc.db.engine import Database

BASE = "/v1/admin/webhook-endpoints"
PUBLIC_URL = "https://93.184.215.14/hooks"  # a public address literal: no DNS needed


@pytest.fixture
async def hooks(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An app with WEBHOOK_SECRETS_KEY set and the default URL rules (no private addresses)."""
    async with client_for(webhook_settings(settings, webhook_allow_private_urls=False), db) as client:
        yield client


async def test_the_secret_is_shown_once_and_never_stored_in_plain_text(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    tenant_id = new_tenant_id()
    key = {**admin_headers, "Idempotency-Key": f"hook-{uuid.uuid4().hex}"}
    body = {"url": PUBLIC_URL, "tenant_id": tenant_id, "event_types": ["wallet.low_balance"]}

    first = await hooks.post(BASE, json=body, headers=key)
    assert first.status_code == 201, first.text
    created = first.json()
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert created["status"] == "enabled"
    assert created["tenant_id"] == tenant_id
    assert first.headers["cache-control"] == "no-store"

    replay = await hooks.post(BASE, json=body, headers=key)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == created["id"]
    assert replay.json()["secret"] is None
    assert "only once" in replay.json()["detail"]
    assert secret not in replay.text

    read = await hooks.get(f"{BASE}/{created['id']}", headers=admin_headers)
    assert read.status_code == 200
    assert "secret" not in read.json()
    assert secret not in read.text

    async with db.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT * FROM webhook_endpoints WHERE id = :id"), {"id": created["id"]})
        ).one()
        stored = await conn.scalar(text("SELECT string_agg(CAST(t AS text), '|') FROM webhook_endpoints t"))
        # The replay's stored answer does not carry it either.
        kept = await conn.scalar(
            text(
                "SELECT count(*) FROM idempotency_keys WHERE position(CAST(:s AS bytea) IN response_body) > 0"
            ),
            {"s": secret.encode()},
        )
    assert secret not in (stored or "")
    assert secret.encode() not in bytes(row.secret_ciphertext)
    assert Fernet(WEBHOOK_SECRETS_KEY.encode()).decrypt(bytes(row.secret_ciphertext)).decode() == secret
    assert kept == 0
    await _delete(hooks, admin_headers, created["id"])


async def test_endpoints_are_listed_page_by_page_changed_and_deleted(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    tenant_id = new_tenant_id()
    made = [
        await create_endpoint(hooks, admin_headers, PUBLIC_URL, tenant_id=tenant_id, description=f"n{i}")
        for i in range(3)
    ]
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {
            "tenant_id": tenant_id,
            "limit": 2,
            **({"cursor": cursor} if cursor else {}),
        }
        page = await hooks.get(BASE, params=params, headers=admin_headers)
        assert page.status_code == 200, page.text
        seen += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [e["id"] for e in seen] == [e["id"] for e in made]
    assert all("secret" not in e for e in seen)
    assert all(e["event_types"] == [] for e in seen)  # every type

    first = made[0]["id"]
    changed = await hooks.patch(
        f"{BASE}/{first}",
        json={
            "event_types": ["topup.succeeded", "wallet.low_balance"],
            "description": "ops",
            "enabled": False,
        },
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["topup.succeeded", "wallet.low_balance"]
    assert changed.json()["status"] == "disabled"
    assert changed.json()["disabled_reason"] == "disabled by an admin"
    again = await hooks.patch(f"{BASE}/{first}", json={"enabled": True}, headers=admin_headers)
    assert again.json()["status"] == "enabled"
    assert again.json()["disabled_reason"] is None
    unchanged = await hooks.patch(f"{BASE}/{first}", headers=admin_headers)
    assert unchanged.status_code == 200
    assert unchanged.json()["description"] == "ops"

    for endpoint in made:
        await _delete(hooks, admin_headers, endpoint["id"])
    assert (await hooks.get(f"{BASE}/{first}", headers=admin_headers)).status_code == 404
    listed = await hooks.get(BASE, params={"tenant_id": tenant_id}, headers=admin_headers)
    assert listed.json()["data"] == []


async def test_an_endpoint_for_every_tenant_has_no_tenant_filter(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    endpoint = await create_endpoint(hooks, admin_headers, PUBLIC_URL, enabled=False)
    try:
        assert endpoint["tenant_id"] is None
        narrowed = await hooks.patch(
            f"{BASE}/{endpoint['id']}", json={"tenant_id": "acme-1"}, headers=admin_headers
        )
        assert narrowed.json()["tenant_id"] == "acme-1"
        widened = await hooks.patch(
            f"{BASE}/{endpoint['id']}", json={"tenant_id": None}, headers=admin_headers
        )
        assert widened.json()["tenant_id"] is None
    finally:
        await _delete(hooks, admin_headers, endpoint["id"])


async def test_rotating_answers_a_new_secret_once_and_keeps_the_old_one_for_the_overlap(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    endpoint = await create_endpoint(hooks, admin_headers, PUBLIC_URL, tenant_id=new_tenant_id())
    key = {**admin_headers, "Idempotency-Key": f"rot-{uuid.uuid4().hex}"}
    rotated = await hooks.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=key)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != endpoint["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    replay = await hooks.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=key)
    assert replay.json()["secret"] is None
    assert new not in replay.text
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT * FROM webhook_endpoints WHERE id = :id"), {"id": endpoint["id"]})
        ).one()
    box = Fernet(WEBHOOK_SECRETS_KEY.encode())
    assert box.decrypt(bytes(row.secret_ciphertext)).decode() == new
    assert box.decrypt(bytes(row.previous_secret_ciphertext)).decode() == endpoint["secret"]
    await _delete(hooks, admin_headers, endpoint["id"])


def _loopback_name() -> str:
    name = socket.gethostname()
    addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
    assert addresses
    assert all(not a.startswith(("8.", "93.")) for a in addresses)
    return name


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "https://127.0.0.1/hooks",
        "https://127.9.9.9:8443/",
        "https://[::1]/hooks",
        "http://[::1]/hooks",
        "https://169.254.169.254/latest/meta-data",
        "http://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/",
        "https://172.16.5.4/",
        "https://192.168.1.1/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://224.0.0.1/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://localhost/hooks",
        "https://api.localhost/hooks",
        "https://no-such-host.invalid/hooks",  # a name that does not resolve cannot be checked
        "http://93.184.215.14/hooks",  # plain http: only with WEBHOOK_ALLOW_PRIVATE_URLS
        "https://user:pass@93.184.215.14/hooks",
        "ftp://93.184.215.14/hooks",
        "file:///etc/passwd",
        "https:///nohost",
        "https://93.184.215.14/hooks#frag",
        "https://93.184.215.14:0/",
    ],
)
async def test_urls_that_are_not_public_https_are_refused(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], url: str
) -> None:
    response = await hooks.post(BASE, json={"url": url, "tenant_id": new_tenant_id()}, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "WEBHOOK_URL_NOT_ALLOWED"
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_host_name_that_resolves_to_loopback_is_refused(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    name = _loopback_name()
    response = await hooks.post(
        BASE, json={"url": f"https://{name}/hooks", "tenant_id": new_tenant_id()}, headers=admin_headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "WEBHOOK_URL_NOT_ALLOWED"
    assert "resolves to 127." in response.json()["detail"]
    endpoint = await create_endpoint(hooks, admin_headers, PUBLIC_URL, tenant_id=new_tenant_id())
    changed = await hooks.patch(
        f"{BASE}/{endpoint['id']}", json={"url": "https://10.1.2.3/"}, headers=admin_headers
    )
    assert changed.status_code == 422
    assert changed.json()["code"] == "WEBHOOK_URL_NOT_ALLOWED"
    await _delete(hooks, admin_headers, endpoint["id"])


async def test_private_urls_are_accepted_when_the_setting_allows_them(
    settings: Settings, db: Database, admin_headers: dict[str, str]
) -> None:
    async with client_for(webhook_settings(settings), db) as client:
        endpoint = await create_endpoint(
            client, admin_headers, "http://127.0.0.1:9/hooks", tenant_id=new_tenant_id()
        )
        assert endpoint["url"] == "http://127.0.0.1:9/hooks"
        await _delete(client, admin_headers, endpoint["id"])


@pytest.mark.parametrize(
    "body",
    [
        {"url": PUBLIC_URL, "event_types": ["no.such_type"]},
        {"url": PUBLIC_URL, "tenant_id": "-bad"},
        {"url": PUBLIC_URL, "secret": "whsec_mine"},
        {"url": ""},
        {"url": PUBLIC_URL + "/" + "x" * 2100},
        {},
    ],
)
async def test_malformed_bodies_are_refused(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any]
) -> None:
    response = await hooks.post(BASE, json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"


async def test_unknown_endpoints_answer_404(hooks: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    missing = f"{BASE}/whe_{'0' * 24}"
    assert (await hooks.get(missing, headers=admin_headers)).json()["code"] == "NOT_FOUND"
    assert (await hooks.patch(missing, json={}, headers=admin_headers)).status_code == 404
    assert (await hooks.delete(missing, headers=admin_headers)).status_code == 404
    assert (await hooks.post(f"{missing}/rotate-secret", headers=admin_headers)).status_code == 404
    assert (await hooks.get(f"{BASE}/not-an-id", headers=admin_headers)).status_code == 422


async def test_tenants_cannot_use_the_admin_routes(
    hooks: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    owner = owner_headers(tenant["id"])
    for method, path in [
        ("POST", BASE),
        ("GET", BASE),
        ("GET", f"{BASE}/whe_{'0' * 24}"),
        ("POST", f"/v1/admin/events/evt_{'0' * 32}/redeliver"),
        ("GET", f"/v1/admin/events/evt_{'0' * 32}"),
    ]:
        response = await hooks.request(method, path, json={"url": PUBLIC_URL}, headers=owner)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "FORBIDDEN"
    assert (await hooks.get(BASE)).status_code == 401


async def test_without_a_secrets_key_registering_answers_503_naming_the_setting(
    settings: Settings, db: Database, admin_headers: dict[str, str]
) -> None:
    async with client_for(changed_settings(settings, webhook_secrets_key=None), db) as client:
        response = await client.post(
            BASE, json={"url": PUBLIC_URL, "tenant_id": new_tenant_id()}, headers=admin_headers
        )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "WEBHOOK_SECRETS_NOT_CONFIGURED"
    assert response.json()["settings"] == ["WEBHOOK_SECRETS_KEY"]


async def test_a_tenant_reads_its_own_event_and_not_another_tenants(
    client: httpx.AsyncClient, create_tenant: TenantFactory, db: Database, admin_headers: dict[str, str]
) -> None:
    mine, other = await create_tenant(), await create_tenant()
    event_id = await commit_event(db, mine["id"])
    own = await client.get(f"/v1/events/{event_id}", headers=owner_headers(mine["id"]))
    assert own.status_code == 200
    assert own.json()["id"] == event_id
    theirs = await client.get(f"/v1/events/{event_id}", headers=owner_headers(other["id"]))
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "NOT_FOUND"
    admin = await client.get(f"/v1/admin/events/{event_id}", headers=admin_headers)
    assert admin.status_code == 200
    assert admin.json()["deliveries"] == []
    missing = await client.get(f"/v1/admin/events/evt_{'0' * 32}", headers=admin_headers)
    assert missing.status_code == 404


async def _delete(client: httpx.AsyncClient, headers: dict[str, str], endpoint_id: str) -> None:
    response = await client.delete(f"{BASE}/{endpoint_id}", headers=headers)
    assert response.status_code == 200, response.text
