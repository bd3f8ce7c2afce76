"""A route whose body fields are all optional takes no body at all, and answers it as it answers `{}`:
`POST /v1/calls/{id}/authorize` asked with nothing but the call id (telephony backends often send no
body) is a call authorized for the default length, not a 422; a PATCH with no body changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import create_plan, ref, usage_key


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-body"),
        pytest.param({"content": b"", "headers": {"Content-Type": "application/json"}}, id="empty-json"),
        pytest.param({"json": {}}, id="empty-object"),
    ],
)
async def test_authorize_without_a_body_is_authorize_with_the_defaults(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
    body: dict[str, Any],
) -> None:
    tenant = await create_tenant(balance=100_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    call_id = ref("call")
    kwargs: dict[str, Any] = {**body, "headers": {**key, **body.get("headers", {})}}

    response = await client.post(f"/v1/calls/{call_id}/authorize", **kwargs)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["allowed"] is True
    assert answer["call_id"] == call_id
    # The hold is for DEFAULT_HOLD_SECONDS (300 s at Rs 10 a minute: Rs 50), as with `{}`.
    assert answer["hold"] == {"amount": 5000, "currency": "INR"}
    again = await client.post(f"/v1/calls/{call_id}/authorize", json={}, headers=key)
    assert again.json()["hold"] == answer["hold"]  # the same hold, asked again


async def test_authorize_still_validates_a_body_that_is_sent(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=100_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    bodies: list[Any] = [{"max_duration_seconds": "600"}, {"max_duration_seconds": 0}, [], "x"]
    for bad in bodies:
        response = await client.post(f"/v1/calls/{ref('call')}/authorize", json=bad, headers=key)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "VALIDATION_FAILED"


async def test_a_platform_key_without_a_body_is_told_to_name_the_tenant(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    key = await usage_key(client, admin_headers, None)
    response = await client.post(f"/v1/calls/{ref('call')}/authorize", headers=key)
    assert response.status_code == 422, response.text
    assert "tenant_id" in response.json()["detail"]


async def _patch_without_and_with_an_empty_body(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> dict[str, Any]:
    nothing = await client.patch(path, headers=headers)
    assert nothing.status_code == 200, nothing.text
    empty = await client.patch(path, json={}, headers=headers)
    assert empty.status_code == 200, empty.text
    assert nothing.json() == empty.json()
    answer: dict[str, Any] = nothing.json()
    return answer


async def test_patch_routes_take_no_body_as_no_change(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    same = await _patch_without_and_with_an_empty_body(
        client, f"/v1/admin/tenants/{tenant['id']}", admin_headers
    )
    assert same["id"] == tenant["id"]

    plan = await create_plan(client, admin_headers, included_minutes=10)
    unchanged = await _patch_without_and_with_an_empty_body(
        client, f"/v1/admin/plans/{plan['id']}", admin_headers
    )
    assert unchanged == plan

    # Switched off from the start: bonus rules apply to every top-up in their currency.
    made = await client.post(
        "/v1/admin/bonus-rules",
        json={"min_amount": 10**12, "percent": "1", "currency": "EUR", "active": False},
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    rule = await _patch_without_and_with_an_empty_body(
        client, f"/v1/admin/bonus-rules/{made.json()['id']}", admin_headers
    )
    assert rule == made.json()
