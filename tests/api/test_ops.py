"""What ops rely on: health, readiness, metrics, offline docs, request ids, and logs without secrets."""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.auth import bearer, make_token, owner_headers
from tests.fixtures.tenants import TenantFactory
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.logs import configure_logging, scrub

# --- health and readiness -----------------------------------------------------------------------


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.fixture
async def unreachable_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose database is a closed port."""
    dead = Database.connect(
        "postgresql+asyncpg://postgres@127.0.0.1:1/walletsvc", pool_size=1, max_overflow=0
    )
    app = create_app(settings, database=dead)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://walletsvc.test") as c:
            yield c
    finally:
        await dead.dispose()


async def test_readyz_is_503_when_the_database_is_unreachable(unreachable_client: httpx.AsyncClient) -> None:
    response = await unreachable_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    # Liveness does not depend on the database: the process itself is fine.
    assert (await unreachable_client.get("/healthz")).status_code == 200


# --- metrics ------------------------------------------------------------------------------------


def _sample(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_metrics_is_prometheus_text_and_counts_requests(client: httpx.AsyncClient) -> None:
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    before = await client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert "version=" in before.headers["content-type"]
    assert "# TYPE walletsvc_http_requests_total counter" in before.text
    count_before = _sample(before.text, "walletsvc_http_requests_total", labels)

    for _ in range(3):
        assert (await client.get("/healthz")).status_code == 200
    after = await client.get("/metrics")
    assert _sample(after.text, "walletsvc_http_requests_total", labels) == count_before + 3
    assert _sample(after.text, "walletsvc_http_request_duration_seconds_count", {"route": "/healthz"}) >= 3


async def test_metrics_label_routes_by_template_not_by_raw_path(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    response = await client.get("/v1/wallet", headers=owner_headers(tenant["id"]))
    assert response.status_code == 200
    text = (await client.get("/metrics")).text
    assert _sample(text, "walletsvc_http_requests_total", {"route": "/v1/wallet", "status": "200"}) >= 1
    # A tenant id in a label would make the series count grow with every tenant.
    assert tenant["id"] not in text


async def test_metrics_count_business_refusals_by_code(client: httpx.AsyncClient) -> None:
    before = _sample(
        (await client.get("/metrics")).text, "walletsvc_refusals_total", {"code": "UNAUTHORIZED"}
    )
    assert (await client.get("/v1/wallet", headers=bearer("garbage"))).status_code == 401
    after = _sample((await client.get("/metrics")).text, "walletsvc_refusals_total", {"code": "UNAUTHORIZED"})
    assert after == before + 1


# --- docs ---------------------------------------------------------------------------------------


async def test_docs_page_uses_only_local_assets(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "SwaggerUIBundle" in page
    assert not re.search(r"https?://", page), "the docs page must not load anything from the internet"

    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(a.endswith(".js") for a in assets)
    assert any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        fetched = await client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 100, asset
    assert "openapi.json" in page
    spec = await client.get("/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "walletsvc"


# --- request ids --------------------------------------------------------------------------------


async def test_every_response_carries_a_request_id(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    responses = [
        await client.get("/healthz"),
        await client.get("/metrics"),
        await client.get("/docs"),
        await client.get("/v1/wallet", headers=owner_headers(tenant["id"])),
        await client.get("/v1/wallet"),  # 401
        await client.get("/v1/admin/tenants", headers=owner_headers(tenant["id"])),  # 403
        await client.get("/v1/no-such-route"),  # 404
        await client.post(
            f"/v1/admin/tenants/{tenant['id']}/adjustments", json={}, headers=admin_headers
        ),  # 422
        await client.get("/v1/transactions/export.csv", headers=owner_headers(tenant["id"])),  # streamed
    ]
    seen = set()
    for response in responses:
        request_id = response.headers.get("x-request-id")
        assert request_id, response.request.url
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        seen.add(request_id)
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            assert response.json()["request_id"] == request_id
    assert len(seen) == len(responses)


async def test_valid_incoming_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    incoming = f"edge-{uuid.uuid4().hex}.retry_1"
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming
    refused = await client.get("/v1/wallet", headers={"X-Request-ID": incoming})
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == incoming
    assert refused.json()["request_id"] == incoming


@pytest.mark.parametrize("incoming", ["has spaces", "x" * 65, "semi;colon", "<script>", ""])
async def test_invalid_incoming_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] != incoming
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


# --- logs ---------------------------------------------------------------------------------------


@dataclass
class CapturedLogs:
    lines: io.StringIO
    records: list[logging.LogRecord] = field(default_factory=list)

    def text(self) -> str:
        return self.lines.getvalue()


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(level=logging.NOTSET)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@contextmanager
def production_logging(level: str) -> Iterator[CapturedLogs]:
    """walletsvc's own logging setup (as `walletsvc serve` makes it), writing into a buffer."""
    root = logging.getLogger()
    touched = ["uvicorn", "uvicorn.error", "uvicorn.access", "pgserver"]
    saved_root = (root.handlers[:], root.level)
    saved = {
        n: (lg.handlers[:], lg.propagate, lg.disabled, lg.level)
        for n in touched
        if (lg := logging.getLogger(n))
    }
    configure_logging(level)
    captured = CapturedLogs(lines=io.StringIO())
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(captured.lines)
    # Also the raw records, before walletsvc's scrubbing: a secret should not even be *handed* to logging.
    root.addHandler(_Collect(captured.records))
    try:
        yield captured
    finally:
        root.handlers[:], root.level = saved_root
        for name, (handlers, propagate, disabled, lvl) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:], lg.propagate, lg.disabled = handlers, propagate, disabled
            lg.setLevel(lvl)


def _raw_text(record: logging.LogRecord) -> str:
    return f"{record.getMessage()} {record.__dict__!r}"


CARD = "4242 4242 4242 4242"
CARD_DIGITS = "4111111111111111"


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_logs_never_contain_tokens_keys_or_card_numbers(
    client: httpx.AsyncClient, admin_headers: dict[str, str], create_tenant: TenantFactory, level: str
) -> None:
    tenant = await create_tenant(balance=1_000)
    created = await client.post(
        "/v1/admin/api-keys",
        json={"scopes": ["wallet:read"], "tenant_id": tenant["id"]},
        headers=admin_headers,
    )
    api_key = created.json()["key"]
    owner_token = make_token(role="owner", tenant_id=tenant["id"])
    admin_token = admin_headers["Authorization"].removeprefix("Bearer ")
    forged_token = make_token(role="super_admin", secret="a-wrong-secret-of-a-decent-length-0123456789")
    tampered_key = api_key[:-2] + ("zz" if not api_key.endswith("zz") else "yy")
    secrets = [owner_token, admin_token, forged_token, api_key, tampered_key, CARD, CARD_DIGITS]
    secrets += [s.split(".")[-1] for s in (owner_token, admin_token, forged_token)]  # signatures alone
    # The key is wsk_<hex id>_<secret>, and the secret itself may contain "_": split off the id only.
    secrets += [api_key.split("_", 2)[2][-20:]]

    path = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    with production_logging(level) as logs:
        assert (await client.get("/v1/wallet", headers=bearer(owner_token))).status_code == 200
        assert (await client.get("/v1/wallet", headers=bearer(api_key))).status_code == 200
        assert (await client.get("/v1/admin/tenants", headers=bearer(forged_token))).status_code == 401
        assert (await client.get("/v1/wallet", headers=bearer(tampered_key))).status_code == 401
        ok = await client.post(
            path, json={"amount": 5, "reason": f"refund for card {CARD}"}, headers=bearer(admin_token)
        )
        assert ok.status_code == 201, ok.text
        invalid = await client.post(
            path,
            json={"amount": CARD_DIGITS, "reason": f"card {CARD_DIGITS}", "card": CARD},
            headers={**bearer(admin_token), "Idempotency-Key": f"k-{CARD_DIGITS}"},
        )
        assert invalid.status_code == 422
        assert CARD_DIGITS not in invalid.text
        refused = await client.post(
            path, json={"amount": -(10**9), "reason": f"card {CARD}"}, headers=bearer(admin_token)
        )
        assert refused.status_code == 402

    text = logs.text()
    lines = text.splitlines()
    # The capture worked: one access line per request, each carrying its request id.
    access = [line for line in lines if '"logger": "walletsvc.access"' in line]
    assert len(access) >= 7, text
    assert all('"request_id": "' in line for line in access)
    for secret in secrets:
        assert secret not in text, f"a secret reached the log output: {secret[:12]}..."
        for record in logs.records:
            assert secret not in _raw_text(record), (
                f"{record.name} was handed a secret ({secret[:12]}...): {record.getMessage()[:200]}"
            )


def test_scrub_redacts_credentials_signatures_and_card_numbers() -> None:
    samples = {
        "jwt": make_token(role="owner", tenant_id="t-1"),
        "bearer": "Bearer abc.def-ghi_jkl",
        "api key": "wsk_0123456789abcdef_" + "Q-w_e" * 8,
        "stripe secret": "sk_live_" + "a1B2c3" * 5,
        "stripe test secret": "sk_test_" + "Z9" * 12,
        "restricted key": "rk_live_" + "x" * 24,
        "webhook secret": "whsec_" + "AbC123+/=" * 4,
        "stripe signature": "v1=" + "0123456789abcdef" * 4,
        "razorpay signature": "fedcba9876543210" * 4,
        "card": "4242424242424242",
        "card with spaces": "4242 4242 4242 4242",
        "card with dashes": "5555-5555-5555-4444",
        "amex": "378282246310005",
    }
    for what, secret in samples.items():
        line = f"payload {{'value': '{secret}'}} end"
        scrubbed = scrub(line)
        assert secret not in scrubbed, what
        assert "[redacted]" in scrubbed, what
        assert scrubbed.startswith("payload "), what
        assert scrubbed.endswith(" end"), what


@pytest.mark.parametrize(
    "harmless",
    [
        "charged 500 paise to tenant t-abc123 for call c-42",
        "GET /v1/transactions?limit=50 200 in 3.2 ms",
        "2024-05-01T12:00:00+00:00 request_id=4f1c2a",
        "balance 1000000 INR",
    ],
)
def test_scrub_leaves_ordinary_text_alone(harmless: str) -> None:
    assert scrub(harmless) == harmless


def test_scrub_is_applied_to_log_lines_even_when_code_logs_a_secret() -> None:
    token = make_token(role="super_admin")
    with production_logging("INFO") as logs:
        logging.getLogger("walletsvc.test").warning("careless: %s and card %s", token, CARD)
        logging.getLogger("walletsvc.test").warning(f"careless f-string: {token}")
    text = logs.text()
    assert "careless" in text
    assert token not in text
    assert CARD not in text
