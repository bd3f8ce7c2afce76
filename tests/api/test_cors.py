"""CORS for browser portals (CORS_ALLOWED_ORIGINS): preflights on every route for the listed origins,
nothing for any other origin, never anything on the webhook routes, and CORS headers on every answer
to an allowed origin, errors included. (tests/e2e/test_browser.py shows a real browser obeying them.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from tests.fixtures.auth import owner_headers
from tests.fixtures.tenants import TenantFactory
from walletsvc.app import create_app
from walletsvc.config import Settings, parse_origins
from walletsvc.db.engine import Database

PORTAL = "https://portal.example"
ADMIN_PORTAL = "http://127.0.0.1:3000"
STRANGER = "https://evil.example"
PORTAL_HEADERS = "authorization, content-type, idempotency-key, x-request-id"
EXPOSED = {"x-request-id", "idempotent-replayed", "retry-after", "content-disposition"}


@pytest.fixture(scope="module")
def cors_app(settings: Settings, db: Database) -> Any:
    app = create_app(
        settings.model_copy(update={"cors_allowed_origins": [PORTAL, ADMIN_PORTAL]}), database=db
    )

    @app.get("/v1/test-cors-crash", include_in_schema=False)
    async def crash() -> None:
        raise RuntimeError("a bug nobody handled")

    return app


@pytest.fixture
async def browser(cors_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cors_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://walletsvc.test") as c:
        yield c


def preflight(origin: str, method: str = "POST", headers: str = PORTAL_HEADERS) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def exposed(response: httpx.Response) -> set[str]:
    return {h.strip().lower() for h in response.headers.get("access-control-expose-headers", "").split(",")}


def assert_cors_for(response: httpx.Response, origin: str) -> None:
    assert response.headers.get("access-control-allow-origin") == origin, response.headers
    assert response.headers.get("access-control-allow-credentials") == "true"
    assert exposed(response) == EXPOSED
    assert "origin" in response.headers.get("vary", "").lower()


# --- preflights ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/topups"),
        ("GET", "/v1/wallet"),
        ("GET", "/v1/transactions/export.csv"),
        ("POST", "/v1/topups/top_abc/razorpay/verify"),
        ("PUT", "/v1/subscription"),
        ("PATCH", "/v1/admin/tenants/acme"),
        ("DELETE", "/v1/admin/api-keys/abc"),
        ("POST", "/v1/usage"),
    ],
)
async def test_a_preflight_from_an_allowed_origin_is_answered_on_every_route(
    browser: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await browser.options(path, headers=preflight(PORTAL, method))

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == PORTAL
    assert response.headers["access-control-allow-credentials"] == "true"
    assert method in response.headers["access-control-allow-methods"].split(", ")
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= allowed
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.headers["x-request-id"]  # preflights pass through the request context too


async def test_every_listed_origin_is_allowed_and_only_as_itself(browser: httpx.AsyncClient) -> None:
    response = await browser.options("/v1/wallet", headers=preflight(ADMIN_PORTAL, "GET"))
    assert response.headers["access-control-allow-origin"] == ADMIN_PORTAL  # never `*`, never a list


@pytest.mark.parametrize(
    "origin", [STRANGER, "https://portal.example.evil.example", "http://portal.example", "null"]
)
async def test_a_preflight_from_another_origin_gets_no_cors_headers(
    browser: httpx.AsyncClient, origin: str
) -> None:
    response = await browser.options("/v1/topups", headers=preflight(origin))

    assert cors_headers(response) == {}
    assert response.status_code == 405  # the route takes no OPTIONS: the browser blocks the request
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_a_preflight_asking_for_a_header_portals_do_not_send_is_refused_as_a_problem(
    browser: httpx.AsyncClient,
) -> None:
    response = await browser.options("/v1/topups", headers=preflight(PORTAL, headers="x-debug-mode"))

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "FORBIDDEN"
    assert body["detail"].startswith("Disallowed CORS headers")
    assert "Idempotency-Key" in body["detail"]  # says what may be sent
    assert body["request_id"] == response.headers["x-request-id"]
    assert "access-control-allow-origin" not in response.headers


# --- answers to an allowed origin, errors included -----------------------------------------------------


async def test_an_answer_to_an_allowed_origin_carries_and_exposes_the_cors_headers(
    browser: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=50_000)

    response = await browser.get("/v1/wallet", headers={**owner_headers(tenant["id"]), "Origin": PORTAL})

    assert response.status_code == 200
    assert response.json()["balance"] == {"amount": 50_000, "currency": "INR"}
    assert_cors_for(response, PORTAL)


async def test_a_replayed_answer_exposes_idempotent_replayed(
    browser: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant()
    headers = {**admin_headers, "Origin": PORTAL, "Idempotency-Key": f"cors-{uuid.uuid4().hex}"}
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    body = {"amount": 1_000, "reason": "portal credit"}

    first = await browser.post(path, json=body, headers=headers)
    again = await browser.post(path, json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert_cors_for(again, PORTAL)


async def test_a_csv_export_exposes_content_disposition(
    browser: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=2_000)
    response = await browser.get(
        "/v1/transactions/export.csv", headers={**owner_headers(tenant["id"]), "Origin": PORTAL}
    )
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    assert_cors_for(response, PORTAL)


async def test_the_lean_usage_path_answers_an_allowed_origin_with_cors_headers_too(
    browser: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(balance=50_000)
    created = await browser.post(
        "/v1/admin/api-keys",
        json={"scopes": ["usage:write"], "tenant_id": tenant["id"]},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    response = await browser.post(
        "/v1/usage",  # no Idempotency-Key: answered by api/fast_usage.py, inside the CORS wrapper
        json={"kind": "call", "reference_id": f"call-{uuid.uuid4().hex[:8]}", "duration_seconds": 61},
        headers={"Authorization": f"Bearer {created.json()['key']}", "Origin": PORTAL},
    )
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "call"
    assert_cors_for(response, PORTAL)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/v1/wallet", {}, 401, "UNAUTHORIZED"),
        ("GET", "/v1/wallet", {"headers": {"Authorization": "Bearer forged"}}, 401, "UNAUTHORIZED"),
        ("DELETE", "/v1/wallet", {}, 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/v1/no-such-route", {}, 404, "NOT_FOUND"),
        (
            "POST",
            "/v1/usage",
            {"content": b"<xml/>", "headers": {"Content-Type": "text/xml"}},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        ("POST", "/v1/topups", {"content": b"[" * 2_000_000}, 413, "PAYLOAD_TOO_LARGE"),
        ("GET", "/v1/test-cors-crash", {}, 500, "INTERNAL_ERROR"),
    ],
)
async def test_an_error_answered_to_an_allowed_origin_still_carries_the_cors_headers(
    browser: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    headers = {"Origin": PORTAL, **kwargs.pop("headers", {})}

    response = await browser.request(method, path, headers=headers, **kwargs)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["request_id"] == response.headers["x-request-id"]  # the SPA can quote it
    assert_cors_for(response, PORTAL)


async def test_a_validation_error_to_an_allowed_origin_is_readable(
    browser: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    response = await browser.post(
        "/v1/topups", json={"amount": 12.5}, headers={**owner_headers(tenant["id"]), "Origin": PORTAL}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert_cors_for(response, PORTAL)


async def test_an_answer_to_another_origin_carries_no_cors_header(
    browser: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=1_000)
    response = await browser.get("/v1/wallet", headers={**owner_headers(tenant["id"]), "Origin": STRANGER})

    assert response.status_code == 200  # answered (a server cannot stop a request), but unreadable
    assert cors_headers(response) == {}
    assert "origin" in response.headers["vary"].lower()  # so no cache serves it to another origin


# --- webhooks: never CORS ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/webhooks/stripe", "/v1/webhooks/razorpay"])
async def test_webhook_routes_answer_no_preflight_and_carry_no_cors_headers(
    browser: httpx.AsyncClient, path: str
) -> None:
    pre = await browser.options(path, headers=preflight(PORTAL, headers="content-type"))
    assert pre.status_code == 405
    assert cors_headers(pre) == {}

    post = await browser.post(
        path, content=b"{}", headers={"Origin": PORTAL, "Content-Type": "application/json"}
    )
    assert post.status_code == 400  # unsigned: refused, and not readable by any page
    assert post.json()["code"] == "INVALID_SIGNATURE"
    assert cors_headers(post) == {}


# --- without CORS_ALLOWED_ORIGINS (the default) --------------------------------------------------------


async def test_by_default_no_origin_is_allowed(client: httpx.AsyncClient) -> None:
    pre = await client.options("/v1/wallet", headers=preflight(PORTAL, "GET"))
    assert pre.status_code == 405
    assert cors_headers(pre) == {}
    plain = await client.get("/v1/wallet", headers={"Origin": PORTAL})
    assert plain.status_code == 401
    assert cors_headers(plain) == {}


# --- the setting ---------------------------------------------------------------------------------------


def test_the_setting_is_a_comma_separated_list_of_origins_as_browsers_send_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", " HTTPS://Portal.Example:443/ , http://127.0.0.1:3000,,")
    settings = Settings(_env_file=None)
    assert settings.cors_allowed_origins == ["https://portal.example", "http://127.0.0.1:3000"]
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS")
    assert Settings(_env_file=None).cors_allowed_origins == []


@pytest.mark.parametrize("value", ["*", "https://portal.example,*", "https://*.example"])
def test_a_wildcard_origin_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", value)
    with pytest.raises(ValidationError, match="may not contain `\\*`: browser portals send credentials"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    "value",
    [
        "portal.example",
        "https://portal.example/app",
        "ftp://portal.example",
        "null",
        "https://u@portal.example",
    ],
)
def test_something_that_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        parse_origins(value)
