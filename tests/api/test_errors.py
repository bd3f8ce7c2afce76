"""The error contract: every refusal is RFC 9457 problem+json with a stable code, and no input is a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.auto_topup import FakeMandates, cancel_unstarted
from tests.fixtures.problems import assert_problem
from tests.fixtures.razorpay_flow import FakeRazorpay
from tests.fixtures.routes import cursor_of, route_table
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from walletsvc.app import create_app
from walletsvc.db.engine import Database


async def test_every_kind_of_refusal_is_a_complete_problem(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="INR", balance=100)
    adjustments = f"/v1/admin/tenants/{tenant['id']}/adjustments"

    assert_problem(await client.get("/v1/wallet"), 401, "UNAUTHORIZED")
    assert_problem(
        await client.get("/v1/admin/tenants", headers=member_headers(tenant["id"])), 403, "FORBIDDEN"
    )
    assert_problem(
        await client.get(f"/v1/admin/tenants/{new_tenant_id()}", headers=admin_headers), 404, "NOT_FOUND"
    )
    assert_problem(await client.get("/v1/no-such-thing", headers=admin_headers), 404, "NOT_FOUND")
    assert_problem(await client.delete("/v1/wallet", headers=admin_headers), 405, "METHOD_NOT_ALLOWED")
    duplicate = {"id": tenant["id"], "name": "Again", "country": "IND", "currency": "INR"}
    assert_problem(
        await client.post("/v1/admin/tenants", json=duplicate, headers=admin_headers), 409, "ALREADY_EXISTS"
    )
    assert_problem(
        await client.post(adjustments, json={"amount": -101, "reason": "too much"}, headers=admin_headers),
        402,
        "INSUFFICIENT_FUNDS",
    )
    assert_problem(
        await client.post(
            adjustments, json={"amount": 1, "reason": "r", "currency": "USD"}, headers=admin_headers
        ),
        422,
        "CURRENCY_MISMATCH",
    )
    assert_problem(
        await client.post(adjustments, json={"amount": "1", "reason": "r"}, headers=admin_headers),
        422,
        "VALIDATION_FAILED",
    )
    assert_problem(
        await client.get("/v1/transactions", params={"cursor": "%%%"}, headers=member_headers(tenant["id"])),
        422,
        "VALIDATION_FAILED",
    )


async def test_problem_type_and_instance_name_the_code_and_the_path(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    missing = new_tenant_id()
    body = assert_problem(
        await client.get(f"/v1/admin/tenants/{missing}/wallet", headers=admin_headers), 404, "NOT_FOUND"
    )
    assert body["instance"] == f"/v1/admin/tenants/{missing}/wallet"
    assert "not-found" in body["type"]
    assert missing in body["detail"]


async def test_a_caller_supplied_request_id_is_echoed_in_the_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/wallet", headers={"X-Request-ID": "portal-req-42"})
    body = assert_problem(response, 401, "UNAUTHORIZED")
    assert body["request_id"] == "portal-req-42"


async def test_validation_problem_lists_each_bad_field_without_echoing_the_input(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {"id": "has space", "name": "", "country": "India", "currency": "XXX", "secret_thing": "sk_live_x"}
    problem = assert_problem(
        await client.post("/v1/admin/tenants", json=body, headers=admin_headers), 422, "VALIDATION_FAILED"
    )
    locations = {tuple(err["loc"]) for err in problem["errors"]}
    assert {("body", "id"), ("body", "name"), ("body", "country"), ("body", "currency")} <= locations
    assert "has space" not in repr(problem)
    assert "sk_live_x" not in repr(problem)


MALFORMED_BODIES = [
    b"{",
    b"{bad json}",
    b'{"amount": 100,}',
    b"[1, 2",
    b"{'amount': 100}",
    b'{"amount": 100 "reason": "x"}',
]


@pytest.mark.parametrize("body", MALFORMED_BODIES)
async def test_malformed_json_body_is_a_validation_failure(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], body: bytes
) -> None:
    tenant = await create_tenant()
    headers = {**admin_headers, "content-type": "application/json"}
    for path in ("/v1/admin/tenants", f"/v1/admin/tenants/{tenant['id']}/adjustments", "/v1/admin/api-keys"):
        assert_problem(await client.post(path, content=body, headers=headers), 422, "VALIDATION_FAILED")
    wallet = await client.get(f"/v1/admin/tenants/{tenant['id']}/wallet", headers=admin_headers)
    assert wallet.json()["balance"]["amount"] == 0


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'"text"', b"42", b"true"])
async def test_a_body_that_is_not_an_object_is_a_validation_failure(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], body: bytes
) -> None:
    tenant = await create_tenant()
    headers = {**admin_headers, "content-type": "application/json"}
    for path in ("/v1/admin/tenants", f"/v1/admin/tenants/{tenant['id']}/adjustments", "/v1/admin/api-keys"):
        assert_problem(await client.post(path, content=body, headers=headers), 422, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing-here"),
        ("GET", "/v2/wallet"),
        ("GET", "/v1/wallet/extra"),
        ("POST", "/v1/admin/nothing"),
        ("GET", "/v1/admin/tenants/t-1/unknown"),
        ("GET", "/"),
    ],
)
async def test_unknown_route_is_a_not_found_problem(
    client: httpx.AsyncClient, admin_headers: dict[str, str], method: str, path: str
) -> None:
    assert_problem(await client.request(method, path, headers=admin_headers), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/wallet"),
        ("POST", "/v1/wallet"),
        ("PUT", "/v1/admin/tenants"),
        ("DELETE", "/v1/admin/tenants/t-1"),
        ("PATCH", "/v1/transactions"),
        ("POST", "/v1/transactions/export.csv"),
        ("GET", "/v1/admin/tenants/t-1/adjustments"),
    ],
)
async def test_wrong_method_is_a_method_not_allowed_problem(
    client: httpx.AsyncClient, admin_headers: dict[str, str], method: str, path: str
) -> None:
    assert_problem(await client.request(method, path, headers=admin_headers), 405, "METHOD_NOT_ALLOWED")


async def test_method_not_allowed_names_the_allowed_methods(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.delete("/v1/wallet", headers=admin_headers)
    assert response.status_code == 405
    assert response.headers.get("allow") == "GET"


async def test_an_unexpected_error_is_a_problem_with_a_request_id(settings: Any, db: Any) -> None:
    app = create_app(settings, database=db)

    @app.get("/v1/test-only-crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://walletsvc.test") as c:
        response = await c.get("/v1/test-only-crash")
    body = assert_problem(response, 500, "INTERNAL_ERROR")
    assert "a bug" not in body["detail"]


# A battery of hostile inputs: whatever they are, the answer is a 4xx, never a 500.
BAD_JSON_BODIES: list[Any] = [
    {},
    {"amount": None, "reason": None},
    {"amount": 10.5, "reason": "x"},
    {"amount": "100", "reason": "x"},
    {"amount": 1e308, "reason": "x"},
    {"amount": 10**30, "reason": "x"},
    {"amount": -(10**30), "reason": "x"},
    {"amount": 2**63, "reason": "x"},
    {"amount": True, "reason": "x"},
    {"amount": [1], "reason": {"a": 1}},
    {"amount": 5, "reason": "nul\x00byte"},
    {"amount": 5, "reason": "x" * 10_000},
    {"amount": 5, "reason": "ok", "allow_negative": "yes"},
    {"amount": 5, "reason": "ok", "currency": "rupees"},
    {"amount": 5, "reason": "ok", "currency": "\x00\x00\x00"},
    {"id": "", "name": "", "country": "", "currency": ""},
    {"id": "x" * 500, "name": "n", "country": "IND", "currency": "INR"},
    {"id": "ok-id\x00", "name": "n", "country": "IND", "currency": "INR"},
    {"id": "ok-id", "name": "nul\x00", "country": "IND", "currency": "INR"},
    {"id": "ok-id", "name": "n", "country": "IND", "currency": "INR", "low_balance_threshold": -1},
    {"id": "ok-id", "name": "n", "country": "IND", "currency": "INR", "low_balance_threshold": 10**30},
    {"id": "ok-id", "name": "n", "country": "IND", "currency": "INR", "payments_provider": "paypal"},
    {"id": "ok-id", "name": "n", "country": "IND", "currency": "INR", "data_residency_region": "AP SOUTH"},
    {"scopes": []},
    {"scopes": ["root"]},
    {"scopes": ["admin"], "tenant_id": "t-x"},
    {"scopes": ["wallet:read"], "tenant_id": "no such tenant"},
    {"scopes": ["wallet:read"], "name": "nul\x00"},
    {"scopes": "admin"},
]

BAD_RAW_BODIES = [b"{", b"\xff\xfe\x00", b"[" * 50_000, b'{"amount": 1' + b"0" * 5000 + b"}", b"null"]

BAD_QUERIES: list[dict[str, str]] = [
    {"limit": "0"},
    {"limit": "-1"},
    {"limit": "100000000000000000000"},
    {"limit": "ten"},
    {"cursor": "!!!"},
    {"cursor": ""},
    {"cursor": "\x00"},
    {"cursor": cursor_of("int:²")},
    {"cursor": cursor_of("int:99999999999999999999999")},
    {"cursor": cursor_of("int:-5")},
    {"cursor": cursor_of("str:a\x00b")},
    {"cursor": cursor_of("str:" + "z" * 5000)},
    {"type": "nope"},
    {"since": "yesterday"},
    {"since": "0001-01-01T00:00:00+05:00"},
    {"until": "9999-12-31T23:59:59-05:00"},
    {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
    {"reference_id": "nul\x00"},
    {"reference_id": "r" * 1000},
    {"tenant_id": "bad tenant id"},
    {"tenant_id": "x\x00"},
    {"flagged": "maybe"},
    {"low_balance": "2"},
]

PATH_VALUES = {
    "tenant_id": ["x" * 200, "bad id", "%00", "..", "t-" + "9" * 62],
    "key_id": ["nothex", "0" * 64, "%00"],
    "topup_id": ["x" * 200, "bad id", "%00", "top_unknown"],
    "rule_id": ["x" * 200, "bad id", "%00", "bonus_unknown"],
    "plan_id": ["x" * 200, "bad id", "%00", "plan_unknown"],
    "currency": ["inr", "XXXX", "%00", "ABC"],
    "charge_id": ["0", "-1", "abc", "9" * 30, "%00"],
    "call_id": ["x" * 300, "bad id", "%00", "call-1"],
    "endpoint_id": ["x" * 300, "bad id", "%00", "whe_" + "0" * 24],
    "event_id": ["x" * 300, "bad id", "%00", "evt_" + "0" * 32],
    "document_id": ["x" * 300, "bad id", "%00", "doc_" + "0" * 32],
    "period": ["2026-13", "x" * 300, "%00", "1999-12", "2021-01"],
    "payment_method_id": ["x" * 300, "bad id", "%00", "pm_unknown"],
    "auto_topup_id": ["x" * 300, "bad id", "%00", "at_" + "0" * 24],
}


def _paths_for(template: str, known_tenant: str) -> list[str]:
    if "{" not in template:
        return [template]
    paths = []
    for name, values in PATH_VALUES.items():
        if "{" + name + "}" in template:
            for value in [*values, known_tenant if name == "tenant_id" else "0123456789abcdef"]:
                paths.append(template.replace("{" + name + "}", value))
    assert paths, f"no hostile values for the parameters of {template}: add them to PATH_VALUES"
    return paths


async def test_no_hostile_input_on_any_route_is_a_server_error(
    app: Any,
    client: httpx.AsyncClient,
    db: Database,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    razorpay: FakeRazorpay,
) -> None:
    # Routes that reach Razorpay with a valid request (a mandate registration takes no body) meet its fake:
    # an unreachable provider is a 503 by design, not a server error of ours.
    FakeMandates(razorpay)
    tenant = await create_tenant(balance=1000)
    callers = [admin_headers, owner_headers(tenant["id"]), member_headers(tenant["id"])]
    routes = sorted((method, path) for method, path in route_table(app) if path.startswith("/v1/"))
    assert ("POST", "/v1/admin/tenants/{tenant_id}/adjustments") in routes
    seen: list[tuple[str, str, int]] = []
    for method, template in routes:
        for path in _paths_for(template, tenant["id"]):
            for headers in callers:
                for params in BAD_QUERIES:
                    response = await client.request(method, path, params=params, headers=headers)
                    seen.append((method, path, response.status_code))
                    assert response.status_code < 500, (method, path, params, response.text)
                if method in {"POST", "PUT", "PATCH"}:
                    for body in BAD_JSON_BODIES:
                        response = await client.request(method, path, json=body, headers=headers)
                        assert response.status_code < 500, (method, path, body, response.text)
                        seen.append((method, path, response.status_code))
                    for raw in BAD_RAW_BODIES:
                        response = await client.request(
                            method,
                            path,
                            content=raw,
                            headers={**headers, "content-type": "application/json"},
                        )
                        assert response.status_code < 500, (method, path, raw[:40], response.text)
                        seen.append((method, path, response.status_code))
    # The battery reached the handlers, not only the front door.
    assert any(status == 422 for _, _, status in seen)
    # Nothing in the battery moved the tenant's money.
    wallet = await client.get(f"/v1/admin/tenants/{tenant['id']}/wallet", headers=admin_headers)
    assert wallet.json()["balance"] == {"amount": 1000, "currency": "INR"}
    await cancel_unstarted(db)  # the mandate registrations it opened are not left for a later reconcile


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
        "Bearer wsk_",
        "Bearer wsk_nosecret",
        "Bearer wsk_0123456789abcdef_wrongsecret",
        "Bearer " + "a" * 10_000,
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4Iiwicm9sZSI6InN1cGVyX2FkbWluIn0.",
    ],
)
async def test_bad_credentials_are_unauthorized_not_a_crash(
    client: httpx.AsyncClient, authorization: str
) -> None:
    for path in ("/v1/wallet", "/v1/transactions", "/v1/admin/tenants", "/v1/transactions/export.csv"):
        response = await client.get(path, headers={"Authorization": authorization})
        assert_problem(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"].lower().startswith("bearer")
