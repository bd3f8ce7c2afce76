from __future__ import annotations

import httpx

from tests.fixtures.auth import member_headers
from tests.fixtures.tenants import TenantFactory


async def test_new_tenant_wallet_starts_at_zero(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="INR", balance=500)
    response = await client.get("/v1/wallet", headers=member_headers(tenant["id"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["balance"] == {"amount": 500, "currency": "INR"}
    assert body["available"] == {"amount": 500, "currency": "INR"}
