"""A real browser against a real `walletsvc serve`: the API docs render offline (Swagger UI at /docs,
ReDoc at /redoc) and load nothing from another host, and a portal page on another origin can call the
API only when that origin is in CORS_ALLOWED_ORIGINS.

Headless chromium runs with every host name but 127.0.0.1 unresolvable, so a page that needed the
internet would show it; its network log lists every request the page made."""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jwt
import pytest

from tests.fixtures.browser import PageLoad, PageServer, load_page
from tests.fixtures.provider_server import ProviderStandIn
from tests.fixtures.server import ServedApp, serve_walletsvc

JWT_SECRET = "browser-e2e-" + uuid.uuid4().hex
RAZORPAY_KEY_ID = "rzp_test_" + uuid.uuid4().hex[:14]
RAZORPAY_KEY_SECRET = uuid.uuid4().hex


def _bearer(role: str, tenant_id: str | None = None) -> str:
    claims: dict[str, object] = {"sub": f"browser-{role}", "role": role, "exp": int(time.time()) + 3600}
    if tenant_id is not None:
        claims["tenant_id"] = tenant_id
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@dataclass
class Stack:
    api: ServedApp
    portal: PageServer  # an allowed origin
    stranger: PageServer  # another origin, not allowed
    provider: ProviderStandIn


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    portal, stranger = PageServer(), PageServer()
    provider = ProviderStandIn(
        stripe_secret_key="sk_test_" + uuid.uuid4().hex,
        razorpay_key_id=RAZORPAY_KEY_ID,
        razorpay_key_secret=RAZORPAY_KEY_SECRET,
    )
    provider_url = provider.serve()
    env = {
        "JWT_SECRET": JWT_SECRET,
        "CORS_ALLOWED_ORIGINS": portal.origin,
        "RAZORPAY_KEY_ID": RAZORPAY_KEY_ID,
        "RAZORPAY_KEY_SECRET": RAZORPAY_KEY_SECRET,
        "RAZORPAY_API_BASE": provider_url,
    }
    try:
        with serve_walletsvc(tmp_path_factory.mktemp("browser"), env) as api:
            yield Stack(api=api, portal=portal, stranger=stranger, provider=provider)
    finally:
        portal.close()
        stranger.close()
        provider.close()
    assert not provider.errors, provider.errors


def _assert_stays_on_this_machine(load: PageLoad, *expected_paths: str) -> None:
    assert not load.off_machine(), f"the page asked another host for: {load.off_machine()}"
    missing = set(expected_paths) - load.paths()
    assert not missing, f"the page did not load {missing} (requests seen: {load.requests})"


# --- the docs ------------------------------------------------------------------------------------------

# Operations the portal and telephony teams use most: each must be listed.
KEY_PATHS = {
    "/v1/admin/tenants",
    "/v1/admin/tenants/{tenant_id}",
    "/v1/wallet",
    "/v1/topups",
    "/v1/topups/{topup_id}",
    "/v1/calls/{call_id}/authorize",
    "/v1/usage",
    "/v1/usage/batch",
    "/v1/admin/topups/{topup_id}/refunds",
    "/v1/admin/charges/{charge_id}/refunds",
    "/v1/webhooks/stripe",
    "/v1/webhooks/razorpay",
}


def test_swagger_ui_renders_every_operation_offline(stack: Stack) -> None:
    load = load_page(f"{stack.api.base_url}/docs")

    assert "Unable to render" not in load.dom
    listed = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', load.dom))
    assert listed >= KEY_PATHS, KEY_PATHS - listed
    assert len(listed) >= 30, listed
    assert "OAS 3.1" in load.dom  # Swagger UI 5 read the 3.1 document
    # The overview (FastAPI's description) is rendered as Markdown, its error table included.
    assert re.search(r"<h2[^>]*>Idempotency-Key</h2>", load.dom)
    assert "<td><code>IDEMPOTENCY_KEY_REUSED</code></td>" in load.dom
    _assert_stays_on_this_machine(
        load, "/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json"
    )


def test_redoc_renders_every_operation_and_its_examples_offline(stack: Stack) -> None:
    load = load_page(f"{stack.api.base_url}/redoc")

    assert "Unable to render" not in load.dom
    assert "Something went wrong" not in load.dom  # ReDoc's own error page
    for summary in (
        "Charge usage: a call at hangup, or SMS, email, fax pages, file transfers",
        "Charge up to 1,000 usage records; each is answered on its own",
        "Start a top-up: answers the checkout the portal should show",
        "Refund a top-up, whole or in part, to where it came from",
        "Stripe events (Stripe-Signature)",
    ):
        assert html.escape(summary, quote=False) in load.dom, summary
    for path in KEY_PATHS:
        assert f">{path}<" in load.dom, path  # the path shown beside each operation
    # The request examples from the schemas are shown (a call hangup, a Razorpay verify).
    assert "call-42" in load.dom
    assert "order_Nq3vX8kLmP2aBcD4" in load.dom
    # ReDoc's side menu shows a logo from cdn.redoc.ly: the page's Content-Security-Policy blocks it,
    # so the request is never made (checked here with every other one).
    _assert_stays_on_this_machine(load, "/redoc", "/docs/assets/redoc.standalone.js", "/openapi.json")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href", "spec-url"} and value]


_URL = re.compile(r"https?://[^\s\"'`)<>\\]+")
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")
_FONT_URL = re.compile(r"https?://[^\s\"'`)]+\.(?:woff2?|ttf|otf|eot)\b|fonts\.(?:googleapis|gstatic)\.com")


def test_docs_pages_and_their_assets_name_no_other_host(stack: Stack) -> None:
    base = stack.api.base_url
    with httpx.Client(base_url=base, timeout=30) as http:
        for page in ("/docs", "/redoc"):
            response = http.get(page)
            assert response.status_code == 200
            assert not _URL.findall(response.text), (page, _URL.findall(response.text))
            # The browser itself refuses anything from elsewhere.
            policy = dict(
                part.strip().split(" ", 1)
                for part in response.headers["content-security-policy"].split(";")
                if " " in part.strip()
            )
            assert policy["default-src"] == "'none'"
            for directive in ("script-src", "style-src", "img-src", "font-src", "connect-src"):
                sources = policy[directive].split()
                assert sources[0] == "'self'", (directive, sources)
                assert all(not s.startswith(("http", "*")) for s in sources), (directive, sources)

            links = _Links()
            links.feed(response.text)
            assert links.urls
            for link in links.urls:
                target = urljoin(base + page, link)
                assert urlsplit(target).netloc == urlsplit(base).netloc, (page, link)
                asset = http.get(target)
                assert asset.status_code == 200, target
                text = asset.content.decode("utf-8", errors="replace")
                if target.endswith(".css"):
                    assert "@import" not in text
                    loads = [u for u in _CSS_URL.findall(text) if not u.startswith(("data:", "#"))]
                    assert not loads, (target, loads[:5])
                if target.endswith((".css", ".js")):
                    assert not _FONT_URL.findall(text), (target, _FONT_URL.findall(text)[:5])


# --- CORS: a portal on another origin ------------------------------------------------------------------

PORTAL_SCRIPT = """
const api = %(api)s, auth = {"Authorization": "Bearer " + %(token)s}, out = {};
async function call(name, path, init) {
  try {
    const r = await fetch(api + path, init);
    out[name] = {status: r.status, request_id: r.headers.get("X-Request-ID"),
                 replayed: r.headers.get("Idempotent-Replayed"), body: await r.json()};
  } catch (e) {
    out[name] = {blocked: String(e)};
  }
}
(async () => {
  await call("wallet", "/v1/wallet", {headers: auth});
  const topup = {method: "POST", body: JSON.stringify({amount: 50000}),
                 headers: {...auth, "Content-Type": "application/json", "Idempotency-Key": %(key)s}};
  await call("topup", "/v1/topups", topup);
  await call("retry", "/v1/topups", topup);
  await call("refused", "/v1/wallet", {headers: {"Authorization": "Bearer not-a-token"}});
  document.getElementById("out").textContent = JSON.stringify(out);
})();
"""


def _portal_page(api: str, token: str, key: str) -> str:
    script = PORTAL_SCRIPT % {"api": json.dumps(api), "token": json.dumps(token), "key": json.dumps(key)}
    return f'<!DOCTYPE html><html><body><pre id="out"></pre><script>{script}</script></body></html>'


def _results(load: PageLoad) -> dict[str, Any]:
    match = re.search(r'<pre id="out">(.*?)</pre>', load.dom, re.S)
    assert match is not None, f"no output element:\n{load.dom[-2000:]}"
    assert match.group(1), f"the page wrote nothing:\n{load.dom[-2000:]}"
    results: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return results


def _open_tenant(api: ServedApp) -> str:
    tenant_id = f"portal-{uuid.uuid4().hex[:10]}"
    admin = {"Authorization": f"Bearer {_bearer('super_admin')}"}
    with httpx.Client(base_url=api.base_url, timeout=30, headers=admin) as http:
        created = http.post(
            "/v1/admin/tenants",
            json={"id": tenant_id, "name": "Portal Pvt Ltd", "country": "IND", "currency": "INR"},
        )
        assert created.status_code == 201, created.text
        credited = http.post(
            f"/v1/admin/tenants/{tenant_id}/adjustments", json={"amount": 50_000, "reason": "opening"}
        )
        assert credited.status_code == 201, credited.text
    return tenant_id


def _api_requests(load: PageLoad, api: ServedApp) -> list[tuple[str, str]]:
    netloc = urlsplit(api.base_url).netloc
    return [(r.method, urlsplit(r.url).path) for r in load.requests if urlsplit(r.url).netloc == netloc]


def test_a_portal_on_an_allowed_origin_reads_the_wallet_and_starts_a_topup(stack: Stack) -> None:
    tenant_id = _open_tenant(stack.api)
    key = f"portal-topup-{uuid.uuid4().hex[:8]}"
    stack.portal.pages["/billing"] = _portal_page(stack.api.base_url, _bearer("owner", tenant_id), key)

    load = load_page(f"{stack.portal.origin}/billing")
    got = _results(load)

    assert got["wallet"]["status"] == 200, got
    assert got["wallet"]["body"]["balance"] == {"amount": 50_000, "currency": "INR"}
    assert got["wallet"]["request_id"]  # an exposed header the page may read

    topup = got["topup"]
    assert topup["status"] == 201, got
    assert topup["body"]["amount"] == {"amount": 50_000, "currency": "INR"}
    assert topup["body"]["checkout"]["kind"] == "razorpay_modal"
    assert topup["body"]["checkout"]["order_id"] in stack.provider.orders
    # The retry with the same Idempotency-Key: the same top-up, and the page can see it is a replay.
    assert got["retry"]["status"] == 201
    assert got["retry"]["body"]["id"] == topup["body"]["id"]
    assert got["retry"]["replayed"] == "true"
    # An error is readable too: its problem, code and request id.
    assert got["refused"]["status"] == 401
    assert got["refused"]["body"]["code"] == "UNAUTHORIZED"
    assert got["refused"]["body"]["request_id"] == got["refused"]["request_id"]

    sent = _api_requests(load, stack.api)
    assert ("OPTIONS", "/v1/topups") in sent, sent  # Idempotency-Key and JSON: a preflight first
    assert ("POST", "/v1/topups") in sent, sent
    assert not load.off_machine(), load.off_machine()


def test_a_page_on_an_origin_not_allowed_can_read_nothing_and_start_nothing(stack: Stack) -> None:
    tenant_id = _open_tenant(stack.api)
    stack.stranger.pages["/steal"] = _portal_page(
        stack.api.base_url, _bearer("owner", tenant_id), f"stranger-{uuid.uuid4().hex[:8]}"
    )

    load = load_page(f"{stack.stranger.origin}/steal")
    got = _results(load)

    for name in ("wallet", "topup", "retry", "refused"):
        assert set(got[name]) == {"blocked"}, got
        assert "Failed to fetch" in got[name]["blocked"]
    # Only refused preflights went out: the browser never sent the requests themselves.
    sent = _api_requests(load, stack.api)
    assert sent, "the page did not even try"
    assert {method for method, _ in sent} == {"OPTIONS"}, sent
    with httpx.Client(base_url=stack.api.base_url, timeout=30) as http:
        topups = http.get("/v1/topups", headers={"Authorization": f"Bearer {_bearer('owner', tenant_id)}"})
    assert topups.status_code == 200
    assert topups.json()["data"] == []
