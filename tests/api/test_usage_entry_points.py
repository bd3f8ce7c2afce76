"""`POST /v1/usage` has two entry points, the lean path (api/fast_usage.py) and the documented route, over
one code path (api/telephony.py). The same request sent to each answers the same: status, problem code,
errors, the headers a client reads, the charge. Requests go in raw (tests/fixtures/raw_asgi.py), so that
repeated headers, odd spacing and a missing Content-Type reach the app exactly as written."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.auth import owner_headers
from tests.fixtures.raw_asgi import RawResponse, raw_request
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from tests.fixtures.usage import ref, usage_key, wallet_of
from walletsvc.api.fast_usage import FastUsagePath

# What a client reads besides the body.
HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed", "cache-control")
# What differs between two charges of the same kind and price, or between two requests.
VOLATILE = ("id", "charge_id", "reference_id", "created_at", "request_id")


@dataclass
class Callers:
    key: str  # a usage:write key of a funded tenant
    poor_key: str  # the same, of a tenant with nothing in its wallet
    reader: str  # a key of the same tenant without usage:write
    platform: str  # a platform-wide usage:write key
    tenant_id: str


def _sms(**fields: Any) -> bytes:
    return json.dumps({"kind": "sms", "reference_id": ref(), "quantity": 1, **fields}).encode()


JSON = ("content-type", "application/json")
NOBODY = new_tenant_id()  # a tenant never opened
Case = Callable[[Callers], tuple[list[tuple[str, str]], bytes]]
CASES: dict[str, Case] = {
    "charged": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], _sms()),
    "lower-case scheme": lambda c: ([("authorization", f"bearer {c.key}"), JSON], _sms()),
    "spaces around the key": lambda c: ([("authorization", f"Bearer   {c.key}  "), JSON], _sms()),
    "no Content-Type": lambda c: ([("authorization", f"Bearer {c.key}")], _sms()),
    "a +json media type": lambda c: (
        [("authorization", f"Bearer {c.key}"), ("content-type", "application/x+json")],
        _sms(),
    ),
    "text/plain": lambda c: ([("authorization", f"Bearer {c.key}"), ("content-type", "text/plain")], _sms()),
    "latin-1 charset": lambda c: (
        [("authorization", f"Bearer {c.key}"), ("content-type", "application/json; charset=latin-1")],
        _sms(),
    ),
    "no Authorization": lambda c: ([JSON], _sms()),
    "Basic credentials": lambda c: ([("authorization", "Basic dXNlcjpwYXNz"), JSON], _sms()),
    "Bearer and no token": lambda c: ([("authorization", "Bearer "), JSON], _sms()),
    "an unknown key": lambda c: ([("authorization", "Bearer wsk_0123456789abcdef_nope"), JSON], _sms()),
    "a forged JWT": lambda c: ([("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"), JSON], _sms()),
    "two Authorization headers": lambda c: (
        [("authorization", f"Bearer {c.key}"), ("authorization", f"Bearer {c.key}"), JSON],
        _sms(),
    ),
    "no usage:write": lambda c: ([("authorization", f"Bearer {c.reader}"), JSON], _sms()),
    "a portal owner": lambda c: ([*owner_headers(c.tenant_id).items(), JSON], _sms()),
    "unauthorized and malformed": lambda c: ([JSON], b'{"kind": "sms"}'),
    "no body": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], b""),
    "null": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], b"null"),
    "a list": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], b"[]"),
    "not JSON": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], b"{"),
    "a key twice": lambda c: (
        [("authorization", f"Bearer {c.key}"), JSON],
        b'{"kind": "sms", "reference_id": "r-1", "quantity": 1, "quantity": 9}',
    ),
    "no reference_id": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], b'{"kind": "sms"}'),
    "a float quantity": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], _sms(quantity=1.0)),
    "an unknown kind": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], _sms(kind="voicemail")),
    "an SMS with a duration": lambda c: (
        [("authorization", f"Bearer {c.key}"), JSON],
        _sms(duration_seconds=5),
    ),
    "another tenant": lambda c: ([("authorization", f"Bearer {c.key}"), JSON], _sms(tenant_id=NOBODY)),
    "a platform key naming nobody": lambda c: ([("authorization", f"Bearer {c.platform}"), JSON], _sms()),
    "a platform key naming an unknown tenant": lambda c: (
        [("authorization", f"Bearer {c.platform}"), JSON],
        _sms(tenant_id=NOBODY),
    ),
    "owed": lambda c: (
        [("authorization", f"Bearer {c.poor_key}"), JSON],
        _sms(kind="call", quantity=None, duration_seconds=600),
    ),
    "an empty Idempotency-Key": lambda c: (
        [("authorization", f"Bearer {c.key}"), ("idempotency-key", ""), JSON],
        _sms(),
    ),
    "an Idempotency-Key": lambda c: (
        [("authorization", f"Bearer {c.key}"), ("idempotency-key", ref("idem")), JSON],
        _sms(),
    ),
}


@pytest.fixture
async def callers(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> Callers:
    tenant = await create_tenant(currency="USD", country="USA", balance=10_000)
    poor = await create_tenant(currency="USD", country="USA")
    key = await usage_key(client, admin_headers, tenant["id"])
    reader = await usage_key(client, admin_headers, tenant["id"], scopes=("wallet:read",))
    return Callers(
        key=_token(key),
        poor_key=_token(await usage_key(client, admin_headers, poor["id"])),
        reader=_token(reader),
        platform=_token(await usage_key(client, admin_headers, None)),
        tenant_id=tenant["id"],
    )


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _seen(response: RawResponse) -> tuple[int, dict[str, str | None], Any]:
    """The answer as a client sees it, without what differs from one request to the next."""
    body = response.json()
    if isinstance(body, dict):
        if "charge_id" in body:  # a 402 names its charge in the detail too
            body["detail"] = body["detail"].replace(body["charge_id"], "<charge id>")
        body = {k: v for k, v in body.items() if k not in VOLATILE}
    return response.status, {h: response.header(h) for h in HEADERS}, body


async def _send(app: FastAPI, headers: list[tuple[str, str]], body: bytes) -> RawResponse:
    return (await raw_request(app, "POST", "/v1/usage", headers=headers, chunks=[body])).response


@pytest.mark.parametrize("case", list(CASES))
async def test_both_entry_points_answer_a_request_alike(
    app: FastAPI, documented_route_app: FastAPI, callers: Callers, case: str
) -> None:
    headers, body = CASES[case](callers)
    lean = await _send(app, headers, body)
    # The same request again, but for its reference id: the documented route must charge it afresh.
    headers, body = CASES[case](callers)
    documented = await _send(documented_route_app, headers, body)
    assert lean.status < 500, lean.body
    assert _seen(lean) == _seen(documented)


async def test_a_retry_and_a_replayed_idempotency_key_answer_alike(
    app: FastAPI, documented_route_app: FastAPI, callers: Callers
) -> None:
    answers = []
    for entry_point in (app, documented_route_app):
        auth = ("authorization", f"Bearer {callers.key}")
        record, keyed_record, idem = _sms(), _sms(), ("idempotency-key", ref("idem"))
        first = await _send(entry_point, [auth, JSON], record)
        retry = await _send(entry_point, [auth, JSON], record)
        keyed = await _send(entry_point, [auth, JSON, idem], keyed_record)
        replay = await _send(entry_point, [auth, JSON, idem], keyed_record)
        reused = await _send(entry_point, [auth, JSON, idem], _sms())
        assert retry.json()["id"] == first.json()["id"]
        assert replay.json() == keyed.json()
        answers.append([_seen(r) for r in (first, retry, keyed, replay, reused)])
    lean, documented = answers
    assert lean == documented
    assert [status for status, _, _ in lean] == [201, 200, 201, 201, 422]
    assert [headers["idempotent-replayed"] for _, headers, _ in lean] == [None, None, None, "true", None]
    assert lean[4][2]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_the_documented_route_app_has_no_lean_path(app: FastAPI, documented_route_app: FastAPI) -> None:
    def has_lean_path(built: FastAPI) -> bool:
        classes: list[object] = [middleware.cls for middleware in built.user_middleware]
        return FastUsagePath in classes

    assert has_lean_path(app)
    assert not has_lean_path(documented_route_app)


async def test_the_documented_route_app_charges_through_the_route(
    documented_route_app: FastAPI, callers: Callers, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    before = (await wallet_of(client, admin_headers, callers.tenant_id))["balance"]["amount"]
    response = await _send(documented_route_app, [("authorization", f"Bearer {callers.key}"), JSON], _sms())
    assert response.status == 201, response.body
    assert (await wallet_of(client, admin_headers, callers.tenant_id))["balance"]["amount"] == before - 2
