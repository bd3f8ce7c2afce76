"""Who may call what: portal JWTs (HS256 / RS256), hashed scoped API keys, and the roles."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from sqlalchemy import event, text

from tests.fixtures.auth import bearer, make_token, member_headers, owner_headers
from tests.fixtures.constants import JWT_SECRET
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.access import Principal
from walletsvc.domain.errors import Unauthorized
from walletsvc.services.auth import Authenticator


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": f"user-{uuid.uuid4().hex[:8]}",
        "role": "owner",
        "tenant_id": new_tenant_id(),
        "exp": int(time.time()) + 3600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"


# --- portal JWTs, HS256 -------------------------------------------------------------------------


async def test_hs256_token_reads_its_tenants_wallet(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=700)
    response = await client.get("/v1/wallet", headers=member_headers(tenant["id"]))
    assert response.status_code == 200, response.text
    assert response.json()["tenant_id"] == tenant["id"]
    assert response.json()["balance"] == {"amount": 700, "currency": "INR"}


async def test_request_without_credentials_is_unauthorized(client: httpx.AsyncClient) -> None:
    _assert_unauthorized(await client.get("/v1/wallet"))
    _assert_unauthorized(await client.get("/v1/admin/tenants"))


async def test_expired_token_is_unauthorized(client: httpx.AsyncClient, create_tenant: TenantFactory) -> None:
    tenant = await create_tenant()
    # Beyond the configured leeway (30 s by default).
    token = make_token(role="owner", tenant_id=tenant["id"], expires_in=-3600)
    response = await client.get("/v1/wallet", headers=bearer(token))
    _assert_unauthorized(response)
    assert "expired" in response.json()["detail"]


async def test_token_signed_with_wrong_secret_is_unauthorized(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    token = make_token(role="super_admin", secret="not-the-" + JWT_SECRET)
    _assert_unauthorized(await client.get("/v1/admin/tenants", headers=bearer(token)))
    token = make_token(role="owner", tenant_id=tenant["id"], secret="not-the-" + JWT_SECRET)
    _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(token)))


async def test_alg_none_token_is_unauthorized(client: httpx.AsyncClient) -> None:
    header = _b64json({"alg": "none", "typ": "JWT"})
    payload = _b64json(_claims(role="super_admin", tenant_id=None, sub="attacker"))
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        _assert_unauthorized(await client.get("/v1/admin/tenants", headers=bearer(token)))


async def test_token_with_tampered_payload_is_unauthorized(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    header, _, signature = make_token(role="member", tenant_id=tenant["id"]).split(".")
    forged_payload = _b64json(_claims(role="super_admin", tenant_id=None, sub="attacker"))
    token = f"{header}.{forged_payload}.{signature}"
    _assert_unauthorized(await client.get("/v1/admin/tenants", headers=bearer(token)))


@pytest.mark.parametrize("missing", ["role", "sub", "exp"])
async def test_token_missing_a_required_claim_is_unauthorized(
    client: httpx.AsyncClient, create_tenant: TenantFactory, missing: str
) -> None:
    tenant = await create_tenant()
    claims = _claims(tenant_id=tenant["id"])
    del claims[missing]
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(token)))


async def test_token_with_unknown_role_is_unauthorized(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    for role in ("admin", "root", "SUPER_ADMIN", ""):
        token = make_token(role=role, tenant_id=tenant["id"])
        _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(token)))


@pytest.mark.parametrize("role", ["member", "owner"])
async def test_tenant_role_token_without_tenant_id_is_unauthorized(
    client: httpx.AsyncClient, role: str
) -> None:
    _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(make_token(role=role))))
    token = make_token(role=role, tenant_id="")
    _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(token)))


async def test_token_with_non_string_tenant_id_is_unauthorized(client: httpx.AsyncClient) -> None:
    token = jwt.encode(_claims(tenant_id=12345), JWT_SECRET, algorithm="HS256")
    _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(token)))


@pytest.mark.parametrize(
    "credential",
    ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "Bearer", "wsk_", "wsk_nounderscore", "x" * 5000],
)
async def test_garbage_credentials_are_unauthorized(client: httpx.AsyncClient, credential: str) -> None:
    _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(credential)))


async def test_non_bearer_authorization_scheme_is_unauthorized(client: httpx.AsyncClient) -> None:
    token = make_token(role="super_admin")
    response = await client.get("/v1/admin/tenants", headers={"Authorization": f"Basic {token}"})
    _assert_unauthorized(response)


# --- portal JWTs, RS256 -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_public_pem(rsa_private_key: rsa.RSAPrivateKey) -> str:
    return (
        rsa_private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
async def rs256_client(
    settings: Settings, db: Database, rsa_public_pem: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The same database, behind an app that verifies portal tokens with an RSA public key only."""
    rs_settings = settings.model_copy(
        update={"jwt_public_key": SecretStr(rsa_public_pem), "jwt_secret": None}
    )
    rs_app = create_app(rs_settings, database=db)
    transport = httpx.ASGITransport(app=rs_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://walletsvc.test") as c:
        yield c


async def test_rs256_token_is_accepted_when_a_public_key_is_configured(
    rs256_client: httpx.AsyncClient, create_tenant: TenantFactory, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    tenant = await create_tenant(balance=250)
    token = jwt.encode(_claims(role="member", tenant_id=tenant["id"]), rsa_private_key, algorithm="RS256")
    response = await rs256_client.get("/v1/wallet", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["balance"] == {"amount": 250, "currency": "INR"}

    admin = jwt.encode(_claims(role="super_admin", tenant_id=None), rsa_private_key, algorithm="RS256")
    response = await rs256_client.get(f"/v1/admin/tenants/{tenant['id']}", headers=bearer(admin))
    assert response.status_code == 200, response.text


async def test_rs256_app_refuses_hs256_tokens(
    rs256_client: httpx.AsyncClient, create_tenant: TenantFactory, rsa_public_pem: str
) -> None:
    tenant = await create_tenant()
    # A token signed with the (old) shared secret.
    hs_token = make_token(role="owner", tenant_id=tenant["id"])
    _assert_unauthorized(await rs256_client.get("/v1/wallet", headers=bearer(hs_token)))

    # Algorithm confusion: HS256 with the *public* key as the HMAC secret. PyJWT won't sign this, so by hand.
    header = _b64json({"alg": "HS256", "typ": "JWT"})
    payload = _b64json(_claims(role="super_admin", tenant_id=None, sub="attacker"))
    signing_input = f"{header}.{payload}".encode()
    signature = _b64url(hmac.new(rsa_public_pem.encode(), signing_input, hashlib.sha256).digest())
    forged = f"{header}.{payload}.{signature}"
    _assert_unauthorized(await rs256_client.get("/v1/admin/tenants", headers=bearer(forged)))


async def test_rs256_token_signed_by_another_key_is_unauthorized(
    rs256_client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(role="owner", tenant_id=tenant["id"]), stranger, algorithm="RS256")
    _assert_unauthorized(await rs256_client.get("/v1/wallet", headers=bearer(token)))


async def test_hs256_app_refuses_rs256_tokens(
    client: httpx.AsyncClient, create_tenant: TenantFactory, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    tenant = await create_tenant()
    token = jwt.encode(_claims(role="owner", tenant_id=tenant["id"]), rsa_private_key, algorithm="RS256")
    _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(token)))


# --- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers_for", [member_headers, owner_headers])
async def test_tenant_roles_read_their_wallet_and_history_but_not_admin_routes(
    client: httpx.AsyncClient, create_tenant: TenantFactory, headers_for: Any
) -> None:
    tenant = await create_tenant(balance=100)
    other = await create_tenant()
    headers = headers_for(tenant["id"])

    assert (await client.get("/v1/wallet", headers=headers)).status_code == 200
    history = await client.get("/v1/transactions", headers=headers)
    assert history.status_code == 200
    assert [row["tenant_id"] for row in history.json()["data"]] == [tenant["id"]]

    refusals = [
        await client.get("/v1/admin/tenants", headers=headers),
        await client.get(f"/v1/admin/tenants/{tenant['id']}", headers=headers),
        await client.get(f"/v1/admin/tenants/{other['id']}/wallet", headers=headers),
        await client.get("/v1/admin/transactions", headers=headers),
        await client.get("/v1/admin/api-keys", headers=headers),
        await client.post(
            f"/v1/admin/tenants/{tenant['id']}/adjustments",
            json={"amount": 1_000_000, "reason": "self-service"},
            headers=headers,
        ),
        await client.post("/v1/admin/api-keys", json={"scopes": ["wallet:read"]}, headers=headers),
        await client.post(
            "/v1/admin/tenants",
            json={"id": new_tenant_id(), "name": "x", "country": "IND", "currency": "INR"},
            headers=headers,
        ),
    ]
    for response in refusals:
        assert response.status_code == 403, (response.request.url, response.text)
        assert response.json()["code"] == "FORBIDDEN"
    # Nothing moved.
    wallet = (await client.get("/v1/wallet", headers=headers)).json()
    assert wallet["balance"]["amount"] == 100


async def test_super_admin_uses_admin_routes_but_has_no_own_wallet(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    response = await client.get(f"/v1/admin/tenants/{tenant['id']}/wallet", headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["tenant_id"] == tenant["id"]
    # Tenant-facing routes act on the caller's own tenant; a platform admin has none.
    response = await client.get("/v1/wallet", headers=admin_headers)
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


async def test_ledger_rows_name_the_admin_who_made_them(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    headers = bearer(make_token(role="super_admin", sub="ops-alice"))
    response = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 5, "reason": "goodwill"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["transaction"]["actor"] == "user:ops-alice"


# --- API keys -----------------------------------------------------------------------------------


async def _create_key(
    client: httpx.AsyncClient, admin_headers: dict[str, str], scopes: list[str], tenant_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"scopes": scopes, "name": "test key"}
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    response = await client.post("/v1/admin/api-keys", json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_created_api_key_is_shown_once_and_never_listed(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    created = await _create_key(client, admin_headers, ["usage:write"], tenant["id"])
    key = created["key"]
    assert key.startswith(f"wsk_{created['id']}_")
    assert created["tenant_id"] == tenant["id"]
    assert created["scopes"] == ["usage:write"]
    assert created["revoked_at"] is None
    secret = key.removeprefix(f"wsk_{created['id']}_")
    assert len(secret) >= 32

    listing = await client.get(
        "/v1/admin/api-keys", headers=admin_headers, params={"tenant_id": tenant["id"]}
    )
    assert listing.status_code == 200
    assert [item["id"] for item in listing.json()] == [created["id"]]
    assert all("key" not in item for item in listing.json())
    assert secret not in listing.text

    everything = await client.get("/v1/admin/api-keys", headers=admin_headers)
    assert created["id"] in {item["id"] for item in everything.json()}
    assert secret not in everything.text


async def test_api_key_is_stored_only_as_a_hash(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory, db: Database
) -> None:
    tenant = await create_tenant()
    created = await _create_key(client, admin_headers, ["wallet:read"], tenant["id"])
    secret = created["key"].removeprefix(f"wsk_{created['id']}_")

    async with db.engine.connect() as conn:
        row = (
            (await conn.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": created["id"]}))
            .mappings()
            .one()
        )
    stored = bytes(row["secret_hash"])
    assert stored == hashlib.sha256(secret.encode()).digest()
    for column, value in row.items():
        as_text = value.hex() if isinstance(value, bytes | memoryview) else str(value)
        assert secret not in as_text, column
        assert created["key"] not in as_text, column
        if isinstance(value, bytes | memoryview):
            assert secret.encode() not in bytes(value), column


async def test_tenant_key_with_wallet_read_reads_only_its_own_tenant(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=321)
    other = await create_tenant(balance=999)
    key = (await _create_key(client, admin_headers, ["wallet:read"], tenant["id"]))["key"]

    response = await client.get("/v1/wallet", headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.json()["tenant_id"] == tenant["id"]
    assert response.json()["balance"]["amount"] == 321

    history = await client.get("/v1/transactions", headers=bearer(key))
    assert history.status_code == 200
    assert {row["tenant_id"] for row in history.json()["data"]} == {tenant["id"]}

    # The other tenant's data is only reachable through admin routes, which this key may not use.
    response = await client.get(f"/v1/admin/tenants/{other['id']}/wallet", headers=bearer(key))
    assert response.status_code == 403
    response = await client.get(
        "/v1/admin/transactions", headers=bearer(key), params={"tenant_id": other["id"]}
    )
    assert response.status_code == 403


async def test_platform_key_with_admin_scope_uses_admin_routes(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    key = (await _create_key(client, admin_headers, ["admin"]))["key"]
    headers = bearer(key)
    tenant_id = new_tenant_id()
    response = await client.post(
        "/v1/admin/tenants",
        json={"id": tenant_id, "name": "Via key", "country": "DEU", "currency": "EUR"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        f"/v1/admin/tenants/{tenant_id}/adjustments", json={"amount": 42, "reason": "by key"}, headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["transaction"]["actor"].startswith("api_key:")
    assert (await client.get(f"/v1/admin/tenants/{tenant_id}", headers=headers)).status_code == 200
    # A platform-wide key belongs to no tenant.
    assert (await client.get("/v1/wallet", headers=headers)).status_code == 403


async def test_key_without_the_needed_scope_is_forbidden(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    usage_key = (await _create_key(client, admin_headers, ["usage:write"], tenant["id"]))["key"]
    response = await client.get("/v1/wallet", headers=bearer(usage_key))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "FORBIDDEN"

    platform_reader = (await _create_key(client, admin_headers, ["wallet:read", "usage:write"]))["key"]
    for path in ("/v1/admin/tenants", "/v1/admin/api-keys", "/v1/admin/transactions"):
        response = await client.get(path, headers=bearer(platform_reader))
        assert response.status_code == 403, (path, response.text)
    response = await client.post(
        "/v1/admin/api-keys", json={"scopes": ["admin"]}, headers=bearer(platform_reader)
    )
    assert response.status_code == 403


async def test_unknown_and_tampered_keys_are_unauthorized(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    created = await _create_key(client, admin_headers, ["wallet:read"], tenant["id"])
    key = created["key"]
    assert (await client.get("/v1/wallet", headers=bearer(key))).status_code == 200

    last = key[-1]
    tampered = key[:-1] + ("A" if last != "A" else "B")
    prefix = f"wsk_{created['id']}_"
    secret = key.removeprefix(prefix)
    other_id = "0" * 16 if created["id"] != "0" * 16 else "1" * 16
    for bad in (
        tampered,
        key + "x",
        prefix,  # the id alone
        f"wsk_{other_id}_{secret}",  # right secret, wrong id
        f"wsk_{uuid.uuid4().hex[:16]}_{uuid.uuid4().hex}",  # unknown id
        f"wsk_{created['id'].upper()}_{secret}",
    ):
        _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(bad)))


async def test_revoked_key_is_unauthorized(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    created = await _create_key(client, admin_headers, ["wallet:read"], tenant["id"])
    assert (await client.get("/v1/wallet", headers=bearer(created["key"]))).status_code == 200

    response = await client.delete(f"/v1/admin/api-keys/{created['id']}", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["revoked_at"] is not None
    assert "key" not in response.json()

    _assert_unauthorized(await client.get("/v1/wallet", headers=bearer(created["key"])))
    listing = await client.get(
        "/v1/admin/api-keys", headers=admin_headers, params={"tenant_id": tenant["id"]}
    )
    assert [item["revoked_at"] is not None for item in listing.json()] == [True]


async def test_a_burst_of_requests_with_a_key_not_in_the_cache_reads_it_once(
    app: Any,
    db: Database,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
) -> None:
    """Telephony sends every charge with one key: when its cache entry runs out, the requests in flight
    wait for one read of it instead of each taking a pooled connection (and overflowing the pool)."""
    tenant = await create_tenant()
    created = await _create_key(client, admin_headers, ["usage:write"], tenant["id"])
    authenticator = Authenticator(app.state.authenticator.config)  # nothing cached yet
    checkouts = 0

    def counted(*_: Any) -> None:
        nonlocal checkouts
        checkouts += 1

    async def authenticate(token: str) -> Principal:
        async with db.sessionmaker() as session:
            return await authenticator.authenticate(session, token)

    pool = db.engine.sync_engine.pool
    event.listen(pool, "checkout", counted)
    try:
        principals = await asyncio.gather(*(authenticate(created["key"]) for _ in range(20)))
        assert checkouts == 1
        assert {p.subject for p in principals} == {created["id"]}
        await authenticate(created["key"])
        assert checkouts == 1  # cached now

        checkouts = 0
        key = created["key"]
        wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
        refused = await asyncio.gather(*(authenticate(wrong) for _ in range(20)), return_exceptions=True)
        assert all(isinstance(r, Unauthorized) for r in refused), refused
        assert checkouts == 1  # the refusal is every waiter's, read once
    finally:
        event.remove(pool, "checkout", counted)


async def test_revoking_an_unknown_key_is_not_found(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.delete(f"/v1/admin/api-keys/{uuid.uuid4().hex[:16]}", headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_tenant_bound_key_cannot_have_the_admin_scope(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    response = await client.post(
        "/v1/admin/api-keys",
        json={"scopes": ["wallet:read", "admin"], "tenant_id": tenant["id"]},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
    listing = await client.get(
        "/v1/admin/api-keys", headers=admin_headers, params={"tenant_id": tenant["id"]}
    )
    assert listing.json() == []


async def test_key_for_an_unknown_tenant_is_not_found(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    tenant_id = new_tenant_id()
    response = await client.post(
        "/v1/admin/api-keys", json={"scopes": ["wallet:read"], "tenant_id": tenant_id}, headers=admin_headers
    )
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "NOT_FOUND"
    listing = await client.get("/v1/admin/api-keys", headers=admin_headers, params={"tenant_id": tenant_id})
    assert listing.json() == []


@pytest.mark.parametrize("scopes", [[], ["wallet:delete"], ["ADMIN"]])
async def test_key_with_no_or_unknown_scopes_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], scopes: list[str]
) -> None:
    response = await client.post("/v1/admin/api-keys", json={"scopes": scopes}, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
