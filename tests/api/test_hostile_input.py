"""Hostile input (issue 7, items 7 to 13): each attack is one request, and none answers 500 or does the
wrong thing. Signatures, tokens and keys are made here from the test's secrets."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.auth import bearer, make_token, owner_headers
from tests.fixtures.constants import RAZORPAY_WEBHOOK_SECRET
from tests.fixtures.problems import assert_problem
from tests.fixtures.providers import body_of, razorpay_webhook_signature, rid, stripe_event, stripe_signature
from tests.fixtures.raw_asgi import raw_request
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import usage_key, wallet_of
from walletsvc.db.engine import Database

JSON = {"content-type": "application/json"}


def _ref(prefix: str = "hostile") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _sms(reference_id: str | None = None) -> dict[str, Any]:
    return {"kind": "sms", "reference_id": reference_id or _ref(), "quantity": 1}


def _body_routes(app: Any) -> list[tuple[str, str]]:
    """Every route that takes a body, with its path parameters filled in (the guard answers before any
    route is matched, so any value does)."""
    routes = []
    for template, operations in app.openapi()["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x-1", template)
        routes += [(m.upper(), path) for m in operations if m.upper() in {"POST", "PUT", "PATCH"}]
    assert ("POST", "/v1/usage") in routes
    assert ("POST", "/v1/webhooks/stripe") in routes
    return routes


# --- 7: provider signature headers ------------------------------------------------------------------


def _stripe_event_body() -> bytes:
    return body_of(stripe_event("customer.subscription.trial_will_end", {"id": rid("sub")}))


@pytest.mark.parametrize(
    "header",
    [
        "t=" + "9" * 5000 + ",v1=abc",  # int() of 5,000 digits raises
        "t=" + "9" * 13 + ",v1=" + "a" * 64,
        "t=abc,v1=" + "a" * 64,
        "t=-5,v1=" + "a" * 64,
        "t=1.5,v1=" + "a" * 64,
        "t=,v1=",
        f"t={int(time.time())}",  # no v1
        f"t={int(time.time())},v1=",
        f"t={int(time.time())},v1=nothex",
        "v1=" + "a" * 64,  # no t
        "garbage",
        ",,,,=,=",
        "t=1," + "v1=ab," * 2000,  # long
        "t=²,v1=" + "a" * 64,  # a digit int() refuses
        f"t={int(time.time())},v1=é",  # not ASCII: hmac.compare_digest raises TypeError
        f"t={int(time.time())},v1=" + "é" * 64,
    ],
)
async def test_a_malformed_stripe_signature_is_invalid_not_a_crash(app: Any, header: str) -> None:
    payload = _stripe_event_body()
    exchange = await raw_request(
        app,
        "POST",
        "/v1/webhooks/stripe",
        headers=[("content-type", "application/json"), ("stripe-signature", header.encode("latin-1"))],
        chunks=[payload],
    )
    assert exchange.response.status == 400, exchange.response.body
    assert exchange.response.json()["code"] == "INVALID_SIGNATURE"


@pytest.mark.parametrize(
    "signature",
    [
        "zz",
        "é" * 64,  # not ASCII
        "A" * 64,  # not our (lower-case) hex digest
        "a" * 63,
        "a" * 100_000,
        " " + "a" * 64,
    ],
)
async def test_a_malformed_razorpay_signature_is_invalid_not_a_crash(app: Any, signature: str) -> None:
    payload = body_of({"entity": "event", "event": "payment.captured", "payload": {}})
    exchange = await raw_request(
        app,
        "POST",
        "/v1/webhooks/razorpay",
        headers=[
            ("content-type", "application/json"),
            ("x-razorpay-signature", signature.encode("latin-1")),
            ("x-razorpay-event-id", rid("evt")),
        ],
        chunks=[payload],
    )
    assert exchange.response.status == 400, exchange.response.body
    assert exchange.response.json()["code"] == "INVALID_SIGNATURE"


async def test_webhooks_see_the_raw_body_byte_for_byte(app: Any) -> None:
    """The signature is over the exact bytes: odd spacing, escapes and non-ASCII text, sent in pieces,
    still verify after the guard has read and replayed them."""
    event = stripe_event("customer.subscription.trial_will_end", {"id": rid("sub"), "note": "café ☎"})
    payload = json.dumps(event, indent=3, ensure_ascii=False).encode() + b"\n\t "
    payload = payload.replace(b'"object"', b'"\\u006fbject"', 1)
    exchange = await raw_request(
        app,
        "POST",
        "/v1/webhooks/stripe",
        headers=[
            ("content-type", "application/json; charset=utf-8"),
            ("stripe-signature", stripe_signature(payload)),
        ],
        chunks=[payload[:7], payload[7:300], payload[300:]],
    )
    assert exchange.response.status == 200, exchange.response.body
    assert exchange.response.json() == {"received": event["id"], "outcome": "ignored"}

    razorpay_payload = b'{ "entity" : "event",  "event":"order.notified" , "payload":{}, "x": "\xe2\x82\xb9"}'
    exchange = await raw_request(
        app,
        "POST",
        "/v1/webhooks/razorpay",
        headers=[
            ("content-type", "application/json"),
            (
                "x-razorpay-signature",
                razorpay_webhook_signature(razorpay_payload, secret=RAZORPAY_WEBHOOK_SECRET),
            ),
            ("x-razorpay-event-id", rid("evt")),
        ],
        chunks=[razorpay_payload[:10], razorpay_payload[10:]],
    )
    assert exchange.response.status == 200, exchange.response.body


# --- 8: token claims and API keys -------------------------------------------------------------------

BAD_CLAIMS = [
    {"role": "owner", "tenant_id": "acme\x00"},
    {"role": "owner", "tenant_id": "ac\x01me"},
    {"role": "owner", "tenant_id": "acme\n"},
    {"role": "owner", "tenant_id": ["acme"]},
    {"role": "owner", "tenant_id": {"id": "acme"}},
    {"role": "owner", "tenant_id": 42},
    {"role": "owner", "tenant_id": "t" * 10_000},
    {"role": "owner", "tenant_id": "t-ok", "sub": "user\x00"},
    {"role": "owner", "tenant_id": "t-ok", "sub": "user\x1b[31m"},
    {"role": "owner", "tenant_id": "t-ok", "sub": "u" * 10_000},
    {"role": "owner\x00", "tenant_id": "t-ok"},
    {"role": ["owner"], "tenant_id": "t-ok"},
    {"role": {"owner": True}, "tenant_id": "t-ok"},
    {"role": "super_admin", "sub": "ops\x00"},
    {"role": "super_admin", "sub": "ops\x7f"},
    {"role": "super_admin", "sub": "ops\u2028"},
    {"role": "super_admin", "sub": "o" * 100_000},
]


@pytest.mark.parametrize("claims", BAD_CLAIMS)
async def test_a_signed_token_with_hostile_claims_is_unauthorized(
    usage_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
    claims: dict[str, Any],
) -> None:
    tenant = await create_tenant(balance=1_000)
    token = bearer(make_token(**claims))
    requests = [
        ("GET", "/v1/wallet", None),
        ("GET", "/v1/transactions", None),
        ("POST", f"/v1/admin/tenants/{tenant['id']}/adjustments", {"amount": 1, "reason": "x"}),
        ("POST", "/v1/usage", {**_sms(), "tenant_id": tenant["id"]}),  # through each entry point
        ("POST", "/v1/topups", {"amount": 50_000}),
    ]
    for method, path, body in requests:
        response = await usage_client.request(method, path, json=body, headers=token)
        assert_problem(response, 401, "UNAUTHORIZED")
    assert (await wallet_of(usage_client, admin_headers, tenant["id"]))["balance"]["amount"] == 1_000


@pytest.mark.parametrize(
    "key",
    [
        b"wsk_0123456789ab\x00cdef_secret",
        b"wsk_\x00_secret",
        b"wsk_0123456789abcdef_sec\x00ret",
        b"wsk_0123456789abcdef_\x01\x02",
        b"wsk_0123456789ABCDEF_secret",
        b"wsk_0123456789abcdef_" + b"s" * 100_000,
        b"wsk_\xff\xfe_\xff",
    ],
)
async def test_an_api_key_with_control_characters_is_unauthorized(usage_app: Any, key: bytes) -> None:
    for method, path, body in [
        ("GET", "/v1/wallet", b""),
        ("POST", "/v1/usage", json.dumps(_sms()).encode()),
    ]:
        exchange = await raw_request(
            usage_app,
            method,
            path,
            headers=[("authorization", b"Bearer " + key), ("content-type", "application/json")],
            chunks=[body],
        )
        assert exchange.response.status == 401, (path, exchange.response.body)
        assert exchange.response.json()["code"] == "UNAUTHORIZED"


# --- 9: a new API key is never stored with its Idempotency-Key ---------------------------------------


async def test_an_api_key_is_never_stored_for_a_replay(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory, db: Database
) -> None:
    tenant = await create_tenant()
    idempotency_key = f"key-{uuid.uuid4().hex}"
    headers = {**admin_headers, "Idempotency-Key": idempotency_key}
    body = {"scopes": ["usage:write"], "tenant_id": tenant["id"], "name": "switch-1"}

    first = await client.post("/v1/admin/api-keys", json=body, headers=headers)
    assert first.status_code == 201, first.text
    created = first.json()
    secret_key = created["key"]
    assert secret_key.startswith("wsk_")
    assert created["detail"] is None
    assert first.headers["cache-control"] == "no-store"

    async with db.engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT response_body FROM idempotency_keys WHERE key = :key"), {"key": idempotency_key}
            )
        ).scalar_one()
    secret_part = secret_key.rsplit("_", 1)[-1]
    assert secret_key.encode() not in bytes(stored)
    assert secret_part.encode() not in bytes(stored)

    replay = await client.post("/v1/admin/api-keys", json=body, headers=headers)
    assert replay.status_code == 201, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    replayed = replay.json()
    assert replayed["key"] is None
    assert "shown only once" in replayed["detail"]
    assert secret_part not in replay.text
    assert {k: v for k, v in replayed.items() if k not in ("key", "detail")} == {
        k: v for k, v in created.items() if k not in ("key", "detail")
    }

    # The key shown the first time is the one that works; the replay made no second key.
    charged = await client.post("/v1/usage", json=_sms(), headers=bearer(secret_key))
    assert charged.status_code == 201, charged.text
    listed = await client.get("/v1/admin/api-keys", params={"tenant_id": tenant["id"]}, headers=admin_headers)
    assert [k["id"] for k in listed.json()] == [created["id"]]


# --- 10: the body limit -----------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_by_its_content_length(
    usage_app: Any,
    usage_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
) -> None:
    tenant = await create_tenant(balance=1_000)
    limit = usage_app.state.settings.max_body_bytes
    assert limit == 1024 * 1024
    too_big = b'{"reason": "' + b"x" * limit + b'", "amount": 1}'
    for method, path in _body_routes(usage_app):
        response = await usage_client.request(
            method, path, content=too_big, headers={**admin_headers, **JSON}
        )
        assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    usage = await usage_client.post("/v1/usage", content=too_big, headers={**admin_headers, **JSON})
    assert_problem(usage, 413, "PAYLOAD_TOO_LARGE")
    # The limit holds before the credentials are even looked at.
    assert_problem(
        await usage_client.post("/v1/usage", content=too_big, headers=JSON), 413, "PAYLOAD_TOO_LARGE"
    )
    assert (await wallet_of(usage_client, admin_headers, tenant["id"]))["balance"]["amount"] == 1_000


async def test_a_chunked_body_is_refused_once_it_grows_past_the_limit(
    usage_app: Any, admin_headers: dict[str, str]
) -> None:
    chunk = b" " * 65_536
    chunks = [b'{"amount": 1, "reason": "', *([chunk] * 40), b'"}']  # 2.6 MB, no Content-Length
    for path in ("/v1/usage", "/v1/admin/tenants", "/v1/webhooks/stripe"):
        exchange = await raw_request(
            usage_app,
            "POST",
            path,
            headers=[
                *admin_headers.items(),
                ("content-type", "application/json"),
                ("transfer-encoding", "chunked"),
            ],
            chunks=chunks,
        )
        assert exchange.response.status == 413, exchange.response.body
        assert exchange.response.json()["code"] == "PAYLOAD_TOO_LARGE"
        # It stopped reading at the limit: the 17th message passed 1 MiB; the other 24 were never read.
        assert exchange.chunks_read == 17


async def test_the_largest_usage_batch_fits_under_the_default_limit(
    usage_app: Any,
    usage_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
) -> None:
    """1,000 records with tenant_id and reference ids of the longest allowed length (200 characters):
    ~343 KB, well under 1 MiB."""
    tenant = await create_tenant(id="t" + uuid.uuid4().hex + "x" * 31)  # the longest id: 64 characters
    records = [
        {
            "tenant_id": tenant["id"],
            "kind": "file_transfer",
            "reference_id": f"{i:04d}" + "r" * 196,
            "quantity": 1,
        }
        for i in range(1000)
    ]
    body = json.dumps({"records": records}).encode()
    assert 340_000 < len(body) < usage_app.state.settings.max_body_bytes / 2
    platform_key = await usage_key(usage_client, admin_headers, None)
    response = await usage_client.post("/v1/usage/batch", content=body, headers={**platform_key, **JSON})
    assert response.status_code == 200, response.text[:500]
    results = response.json()["results"]
    assert len(results) == 1000
    assert {r["status"] for r in results} == {201}  # INR has no file transfer price: charged 0


# --- 11: duplicate keys -----------------------------------------------------------------------------


async def test_a_duplicate_key_does_not_debit_the_second_amount(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=5_000)
    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    for body in (
        b'{"amount": 1, "reason": "x", "amount": -999999999999}',
        b'{"amount": 1, "reason": "x", "allow_negative": false, "allow_negative": true, "amount": -9000}',
        b'{"amount": -4000, "reason": "a", "reason": "b"}',
    ):
        response = await client.post(path, content=body, headers={**admin_headers, **JSON})
        problem = assert_problem(response, 422, "VALIDATION_FAILED")
        assert "appears twice" in problem["detail"]
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"]["amount"] == 5_000


async def test_duplicate_keys_are_refused_at_any_depth_on_every_route(
    usage_app: Any,
    usage_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
) -> None:
    tenant = await create_tenant(balance=5_000)
    key = await usage_key(usage_client, admin_headers, tenant["id"])
    nested = b'{"records": [{"kind": "sms", "reference_id": "r-1", "quantity": 1, "quantity": 99999}]}'
    deep = b'{"a": [{"b": {"c": [1, {"d": 1, "e": 2, "d": 3}]}}]}'
    for method, path in _body_routes(usage_app):
        for body in (b'{"x": 1, "x": 2}', nested, deep):
            response = await usage_client.request(
                method, path, content=body, headers={**admin_headers, **JSON}
            )
            assert_problem(response, 422, "VALIDATION_FAILED")
    # Without an Idempotency-Key (the lean path, in the app that has it) and with one, alike.
    dup = b'{"kind": "sms", "reference_id": "r-dup", "quantity": 1, "quantity": 500}'
    for extra in ({}, {"Idempotency-Key": _ref("idem")}):
        response = await usage_client.post("/v1/usage", content=dup, headers={**key, **JSON, **extra})
        assert_problem(response, 422, "VALIDATION_FAILED")
    batch = await usage_client.post("/v1/usage/batch", content=nested, headers={**key, **JSON})
    assert_problem(batch, 422, "VALIDATION_FAILED")
    assert (await wallet_of(usage_client, admin_headers, tenant["id"]))["balance"]["amount"] == 5_000


# --- 12: POST /v1/usage answers alike with and without an Idempotency-Key, through each entry point ---


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/xml", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/json; charset=latin-1", 415),
        ("text/json", 415),
        ("application/json", 201),
        ("Application/JSON; charset=UTF-8", 201),
        ("application/vnd.walletsvc+json", 201),
        (None, 201),  # no Content-Type: read as JSON, on both paths
    ],
)
async def test_both_usage_paths_answer_a_media_type_alike(
    usage_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
    content_type: str | None,
    status: int,
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(usage_client, admin_headers, tenant["id"])
    headers = {**key, **({"content-type": content_type} if content_type else {})}
    plain = await usage_client.post("/v1/usage", content=json.dumps(_sms()), headers=headers)
    keyed = await usage_client.post(
        "/v1/usage", content=json.dumps(_sms()), headers={**headers, "Idempotency-Key": _ref("idem")}
    )
    for response in (plain, keyed):
        if status == 415:
            assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
        else:
            assert response.status_code == 201, response.text
    wallet = await wallet_of(usage_client, admin_headers, tenant["id"])
    # An SMS costs 2 cents: both paths charged one, or neither did.
    assert wallet["balance"]["amount"] == (1_000 - 4 if status == 201 else 1_000)


async def test_every_body_route_refuses_a_body_that_is_not_json(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for method, path in _body_routes(app):
        for content_type, body in (
            ("text/plain", b'{"amount": 1}'),
            ("application/x-www-form-urlencoded", b"amount=1&reason=x"),
            ("application/xml", b"<amount>1</amount>"),
        ):
            response = await client.request(
                method, path, content=body, headers={**admin_headers, "content-type": content_type}
            )
            assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[]", b"{", b'{"kind": "sms"}', b'{"kind": "sms", "reference_id": "r", "quantity": 1.0}'],
)
async def test_both_usage_paths_refuse_a_bad_body_alike(
    usage_client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory, body: bytes
) -> None:
    tenant = await create_tenant(balance=1_000)
    key = await usage_key(usage_client, admin_headers, tenant["id"])
    plain = await usage_client.post("/v1/usage", content=body, headers={**key, **JSON})
    keyed = await usage_client.post(
        "/v1/usage", content=body, headers={**key, **JSON, "Idempotency-Key": _ref()}
    )
    plain_problem = assert_problem(plain, 422, "VALIDATION_FAILED")
    keyed_problem = assert_problem(keyed, 422, "VALIDATION_FAILED")
    assert plain_problem["errors"] == keyed_problem["errors"]


async def test_two_authorization_headers_are_refused_on_every_route(
    usage_app: Any,
    usage_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
) -> None:
    tenant = await create_tenant(balance=1_000)
    key = (await usage_key(usage_client, admin_headers, tenant["id"]))["Authorization"]
    garbage = "Bearer not-a-token"
    requests = [
        (
            "POST",
            "/v1/usage",
            json.dumps(_sms()).encode(),
        ),  # once, the lean path read the last and the route the first
        ("POST", "/v1/usage/batch", json.dumps({"records": [_sms()]}).encode()),
        ("GET", "/v1/wallet", b""),
        ("GET", "/v1/transactions/export.csv", b""),
        ("POST", f"/v1/admin/tenants/{tenant['id']}/adjustments", b'{"amount": 1, "reason": "x"}'),
    ]
    for first, second in ((garbage, key), (key, garbage), (key, key), (admin_headers["Authorization"], key)):
        for method, path, body in requests:
            exchange = await raw_request(
                usage_app,
                method,
                path,
                headers=[
                    ("authorization", first),
                    ("authorization", second),
                    ("content-type", "application/json"),
                ],
                chunks=[body],
            )
            assert exchange.response.status == 401, (path, exchange.response.body)
            assert exchange.response.json()["code"] == "UNAUTHORIZED"
            assert exchange.response.header("www-authenticate") == "Bearer"
    assert (await wallet_of(usage_client, admin_headers, tenant["id"]))["balance"]["amount"] == 1_000


# --- 13: POST /v1/usage declares what it answers ----------------------------------------------------


def test_post_usage_declares_its_replay_and_the_guard_refusals(app: Any) -> None:
    responses = app.openapi()["paths"]["/v1/usage"]["post"]["responses"]
    assert {"200", "201", "401", "402", "403", "404", "413", "415", "422"} <= set(responses)
    for status in ("200", "201"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ChargeOut"}
    for status in ("413", "415"):
        assert "application/problem+json" in responses[status]["content"]


# --- the rest of the battery: none of these is a 500 ------------------------------------------------


async def test_other_hostile_bodies_are_validation_failures(
    usage_client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=1_000)
    key = await usage_key(usage_client, admin_headers, tenant["id"])
    adjust = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    deep = b"[" * 10_000 + b"]" * 10_000  # nested 10,000 deep
    huge = str(10**400).encode()  # a huge integer
    too_long = b"1" + b"0" * 5000  # past int()'s 4,300-digit limit
    hostile = [
        (
            b'{"amount": ' + deep + b', "reason": "x"}',
            b'{"kind": "sms", "reference_id": "r", "quantity": ' + deep + b"}",
        ),
        (
            b'{"amount": ' + huge + b', "reason": "x"}',
            b'{"kind": "sms", "reference_id": "r", "quantity": ' + huge + b"}",
        ),
        (
            b'{"amount": ' + too_long + b', "reason": "x"}',
            b'{"kind": "call", "reference_id": "r", "duration_seconds": ' + too_long + b"}",
        ),
        (
            b'{"amount": 1, "reason": "nul\\u0000"}',
            b'{"kind": "sms", "reference_id": "nul\\u0000", "quantity": 1}',
        ),
        (
            b'{"amount": 1, "reason": "\xff\xfe"}',
            b'{"kind": "sms", "reference_id": "\xff\xfe", "quantity": 1}',
        ),
        (b'{"amount": 1, "reason": "\\ud800"}', b'{"kind": "sms", "reference_id": "\\ud800", "quantity": 1}'),
        (
            b'\xef\xbb\xbf{"amount": 1, "reason": "BOM"}',
            b'\xef\xbb\xbf{"kind": "sms", "reference_id": "r", "quantity": 1}',
        ),
        (b"\xff\xfe{\x00}\x00", b"\xff\xfe{\x00}\x00"),  # UTF-16, which json.loads(bytes) would guess
    ]
    for adjustment, usage in hostile:
        response = await usage_client.post(adjust, content=adjustment, headers={**admin_headers, **JSON})
        assert_problem(response, 422, "VALIDATION_FAILED")
        assert_problem(
            await usage_client.post("/v1/usage", content=usage, headers={**key, **JSON}),
            422,
            "VALIDATION_FAILED",
        )
    assert (await wallet_of(usage_client, admin_headers, tenant["id"]))["balance"]["amount"] == 1_000


async def test_hostile_parameters_and_headers_are_not_server_errors(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=1_000)
    owner = owner_headers(tenant["id"])
    assert_problem(
        await client.get("/v1/admin/tenants/a%00b", headers=admin_headers), 422, "VALIDATION_FAILED"
    )
    assert_problem(
        await client.post("/v1/calls/a%00b/authorize", json={}, headers=admin_headers),
        422,
        "VALIDATION_FAILED",
    )
    nul_query = await client.get("/v1/transactions", params={"reference_id": "a\x00b"}, headers=owner)
    assert_problem(nul_query, 422, "VALIDATION_FAILED")
    big = "a" * 3_000_000  # a 3 MB header
    assert (await client.get("/v1/wallet", headers={**owner, "X-Padding": big})).status_code == 200
    assert_problem(
        await client.get("/v1/wallet", headers={"Authorization": "Bearer " + big}), 401, "UNAUTHORIZED"
    )
    assert_problem(
        await client.get("/v1/wallet", headers={"Authorization": "Bearer wsk_" + big}), 401, "UNAUTHORIZED"
    )
    padded = await client.get("/v1/wallet", headers={**owner, "X-Request-ID": big})
    assert padded.status_code == 200
    assert len(padded.headers["x-request-id"]) == 32
    signed = await client.post(
        "/v1/webhooks/stripe", content=b"{}", headers={**JSON, "Stripe-Signature": big}
    )
    assert_problem(signed, 400, "INVALID_SIGNATURE")
