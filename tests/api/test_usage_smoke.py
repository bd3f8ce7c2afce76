from __future__ import annotations

import httpx
import pytest

from tests.fixtures.auth import owner_headers
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import usage_key


@pytest.fixture
def client(usage_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Every test here runs through each entry point of `POST /v1/usage` (tests/fixtures/usage.py)."""
    return usage_client


async def test_authorize_then_hangup_charges_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    auth = await client.post("/v1/calls/call-1/authorize", json={"max_duration_seconds": 600}, headers=key)
    assert auth.status_code == 200, auth.text
    body = auth.json()
    assert body["allowed"] is True
    assert body["hold"]["amount"] == 60  # 10 minutes at 5 cents + a 10 cent connection fee
    wallet = (await client.get("/v1/wallet", headers=owner_headers(tenant["id"]))).json()
    assert wallet["reserved"]["amount"] == 60
    charge = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "call-1", "duration_seconds": 61}, headers=key
    )
    assert charge.status_code == 201, charge.text
    assert charge.json()["amount"] == {"amount": 20, "currency": "USD"}  # 2 minutes + fee
    again = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "call-1", "duration_seconds": 61}, headers=key
    )
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["id"] == charge.json()["id"]
    wallet = (await client.get("/v1/wallet", headers=owner_headers(tenant["id"]))).json()
    assert wallet["balance"]["amount"] == 980
    assert wallet["reserved"]["amount"] == 0
