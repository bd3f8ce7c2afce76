import base64
import httpx
from tests.conftest import TenantFactory, member_headers

def c(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

async def test_probe(client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers) -> None:
    t = await create_tenant(balance=100)
    h = member_headers(t["id"])
    out = []
    for params in [{"cursor": c("int:²")}, {"cursor": c("int:99999999999999999999999")}, {"reference_id": "a\x00b"},
                   {"since": "0001-01-01T00:00:00+05:00"}, {"until": "9999-12-31T23:59:59-05:00"}, {"since": "0001-01-01T00:00:00"}]:
        r = await client.get("/v1/transactions", params=params, headers=h)
        out.append((params, r.status_code, r.text[:200], dict(r.headers)))
        r = await client.get("/v1/transactions/export.csv", params=params, headers=h)
        out.append(("csv", params, r.status_code, r.text[:200]))
    for params in [{"cursor": c("str:a\x00")}, {"cursor": c("str:" + "z"*300)}]:
        r = await client.get("/v1/admin/tenants", params=params, headers=admin_headers)
        out.append((params, r.status_code, r.text[:200]))
    r = await client.post(f"/v1/admin/tenants/{t['id']}/adjustments", json={"amount": 5, "reason": "a\x00b"}, headers=admin_headers)
    out.append(("reason nul", r.status_code, r.text[:200]))
    r = await client.post("/v1/admin/tenants", json={"id": "t-nul-x1", "name": "a\x00b", "country": "IND", "currency": "INR"}, headers=admin_headers)
    out.append(("name nul", r.status_code, r.text[:200]))
    r = await client.post("/v1/admin/api-keys", json={"scopes": ["wallet:read"], "name": "a\x00b"}, headers=admin_headers)
    out.append(("key name nul", r.status_code, r.text[:200]))
    r = await client.delete("/v1/wallet", headers=h)
    out.append(("405", r.status_code, r.text[:300], dict(r.headers)))
    r = await client.get("/nope", headers=h)
    out.append(("404", r.status_code, r.text[:300], dict(r.headers)))
    r = await client.post("/v1/admin/tenants", content=b"{bad", headers={**admin_headers, "content-type": "application/json"})
    out.append(("badjson", r.status_code, r.text[:300]))
    r = await client.post("/v1/admin/tenants", content=b"{bad", headers={"content-type": "application/json"})
    out.append(("badjson noauth", r.status_code, r.text[:300]))
    r = await client.get("/v1/wallet")
    out.append(("noauth", r.status_code, r.text[:300], dict(r.headers)))
    for o in out:
        print(o)
    assert 0
