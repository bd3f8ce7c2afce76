"""Portal tokens through the API under the auth settings: a weak secret never gets as far as an app,
audience and issuer are checked when set, a token that lives too long is refused, an app with no JWT
setting still takes API keys, and the start-up log says which modes are on."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr, ValidationError

from tests.fixtures.auth import bearer
from tests.fixtures.constants import JWT_SECRET
from tests.fixtures.settings_apps import changed_settings, client_for, run_lifespan
from tests.fixtures.tenants import TenantFactory
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.engine import Database

AUDIENCE = "walletsvc-" + uuid.uuid4().hex[:6]
ISSUER = "https://id.example/" + uuid.uuid4().hex[:6]


def _owner_token(tenant_id: str, *, secret: str = JWT_SECRET, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": "u-1", "role": "owner", "tenant_id": tenant_id, "iat": now}
    payload["exp"] = now + 600
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


def _refused(response: httpx.Response, why: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "UNAUTHORIZED"
    assert why in response.json()["detail"], response.json()


@pytest.mark.parametrize("weak", ["x", "change-me", "dev-secret-change-me-0123456789abcdef"])
def test_a_weak_secret_never_becomes_an_app(settings: Settings, db: Database, weak: str) -> None:
    with pytest.raises(ValidationError, match="jwt_secret"):
        changed_settings(settings, jwt_secret=weak)
    # Nor by a path that skips validation: nothing could then sign a token with it.
    with pytest.raises(ValueError, match="JWT_SECRET"):
        create_app(settings.model_copy(update={"jwt_secret": SecretStr(weak)}), database=db)


async def test_audience_and_issuer_are_required_when_set(
    settings: Settings, db: Database, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=700)
    checked = changed_settings(settings, jwt_audience=AUDIENCE, jwt_issuer=ISSUER)
    async with client_for(checked, db) as c:
        good = await c.get("/v1/wallet", headers=bearer(_owner_token(tenant["id"], aud=AUDIENCE, iss=ISSUER)))
        assert good.status_code == 200, good.text
        assert good.json()["balance"]["amount"] == 700
        for claims, why in [
            ({"aud": "another-api", "iss": ISSUER}, "audience (aud) is not this service"),
            ({"iss": ISSUER}, "has no aud claim"),
            ({"aud": AUDIENCE, "iss": "https://evil.example"}, "issuer (iss) is not the one"),
            ({"aud": AUDIENCE}, "has no iss claim"),
        ]:
            _refused(await c.get("/v1/wallet", headers=bearer(_owner_token(tenant["id"], **claims))), why)


async def test_with_no_audience_set_a_token_for_another_service_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    plain = await client.get("/v1/wallet", headers=bearer(_owner_token(tenant["id"])))
    assert plain.status_code == 200, plain.text
    foreign = await client.get("/v1/wallet", headers=bearer(_owner_token(tenant["id"], aud="crm-api")))
    _refused(foreign, "names an audience (aud)")


async def test_a_token_living_longer_than_the_maximum_is_refused(
    settings: Settings, db: Database, client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    now = int(time.time())
    day = 24 * 3600
    # The suite's app: the default maximum of a day.
    assert (
        await client.get("/v1/wallet", headers=bearer(_owner_token(tenant["id"], iat=now, exp=now + day)))
    ).status_code == 200
    _refused(
        await client.get(
            "/v1/wallet", headers=bearer(_owner_token(tenant["id"], iat=now, exp=now + day + 1))
        ),
        "longer than 86400 s (JWT_MAX_LIFETIME_SECONDS)",
    )
    # A token with no iat: what is left of it counts.
    no_iat = _owner_token(tenant["id"], iat=None, exp=now + 30 * day)
    _refused(await client.get("/v1/wallet", headers=bearer(no_iat)), "JWT_MAX_LIFETIME_SECONDS")

    async with client_for(changed_settings(settings, jwt_max_lifetime_seconds=900), db) as c:
        ok = await c.get("/v1/wallet", headers=bearer(_owner_token(tenant["id"], iat=now, exp=now + 900)))
        assert ok.status_code == 200, ok.text
        long = await c.get("/v1/wallet", headers=bearer(_owner_token(tenant["id"], iat=now, exp=now + 901)))
        _refused(long, "longer than 900 s")
        # The fast usage path reads tokens through the same authenticator.
        usage = await c.post(
            "/v1/usage",
            json={"tenant_id": tenant["id"], "kind": "sms", "reference_id": "sms-1", "quantity": 1},
            headers=bearer(_owner_token(tenant["id"], iat=now, exp=now + 901)),
        )
        _refused(usage, "longer than 900 s")


async def test_with_no_jwt_setting_portal_calls_are_refused_and_api_keys_still_work(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
) -> None:
    tenant = await create_tenant(balance=300)
    made = await client.post(
        "/v1/admin/api-keys",
        json={"scopes": ["wallet:read"], "tenant_id": tenant["id"], "name": "reader"},
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]

    async with client_for(changed_settings(settings, jwt_secret=None), db) as c:
        portal = await c.get("/v1/wallet", headers=bearer(_owner_token(tenant["id"])))
        _refused(portal, "neither JWT_SECRET nor JWT_PUBLIC_KEY is set")
        service = await c.get("/v1/wallet", headers=bearer(key))
        assert service.status_code == 200, service.text
        assert service.json()["balance"]["amount"] == 300


async def test_start_up_logs_which_auth_modes_are_on(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="walletsvc.app"):
        await run_lifespan(changed_settings(settings, jwt_audience=AUDIENCE), db)
        await run_lifespan(changed_settings(settings, jwt_secret=None), db)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("auth: ")]
    assert len(lines) == 2, caplog.text
    (hs_level, hs), (none_level, none) = lines
    assert hs_level == logging.INFO
    assert hs.startswith(f"auth: portal tokens: HS256 JWT (JWT_SECRET; aud must be '{AUDIENCE}'"), hs
    assert "lifetime at most 86400 s" in hs
    assert none_level == logging.WARNING
    assert none.startswith("auth: portal tokens: none (neither JWT_SECRET nor JWT_PUBLIC_KEY is set"), none
    assert JWT_SECRET not in caplog.text


def test_a_fresh_strong_secret_is_accepted(settings: Settings) -> None:
    fresh = secrets.token_hex(32)
    assert changed_settings(settings, jwt_secret=fresh).jwt_secret == SecretStr(fresh)
