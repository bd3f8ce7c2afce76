"""The committed openapi.yaml is the app's contract, and DESIGN.md's routes are in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENAPI_FILE = REPO_ROOT / "openapi.yaml"

# The route table of DESIGN.md ("The API the portal and telephony teams code against").
DESIGN_ROUTES = [
    ("POST", "/v1/admin/tenants"),
    ("GET", "/v1/admin/tenants"),
    ("GET", "/v1/admin/tenants/{tenant_id}"),
    ("GET", "/v1/wallet"),
    ("GET", "/v1/admin/tenants/{tenant_id}/wallet"),
    ("POST", "/v1/admin/tenants/{tenant_id}/adjustments"),
    ("GET", "/v1/transactions"),
    ("GET", "/v1/transactions/export.csv"),
    ("GET", "/v1/admin/transactions"),
    ("POST", "/v1/admin/api-keys"),
    ("POST", "/v1/topups"),
    ("GET", "/v1/topups"),
    ("GET", "/v1/topups/{topup_id}"),
    ("GET", "/v1/topups/stripe/return"),
    ("POST", "/v1/topups/{topup_id}/razorpay/verify"),
    ("POST", "/v1/webhooks/stripe"),
    ("POST", "/v1/webhooks/razorpay"),
    ("POST", "/v1/admin/topups/{topup_id}/refunds"),
    ("GET", "/v1/plans"),
    ("POST", "/v1/admin/plans"),
    ("PATCH", "/v1/admin/plans/{plan_id}"),
    ("GET", "/v1/subscription"),
    ("PUT", "/v1/subscription"),
    ("PUT", "/v1/admin/tenants/{tenant_id}/subscription"),
    ("POST", "/v1/calls/{call_id}/authorize"),
    ("POST", "/v1/usage"),
    ("POST", "/v1/usage/batch"),
    ("POST", "/v1/admin/charges/{charge_id}/refunds"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]
# Served, but they *are* the docs: not operations inside them.
DOCS_ROUTES = [("GET", "/docs"), ("GET", "/openapi.json")]


def _app_routes(app: Any) -> set[tuple[str, str]]:
    # Recent FastAPI keeps included routers lazily in app.routes; iter_route_contexts flattens them.
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = iter_contexts(app.routes) if iter_contexts is not None else app.routes
    found = set()
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and methods:
            found |= {(method, path) for method in methods if method != "HEAD"}
    return found


def test_openapi_yaml_matches_the_app(app: Any) -> None:
    assert OPENAPI_FILE.exists(), "openapi.yaml is missing: run `walletsvc openapi -o openapi.yaml`"
    with OPENAPI_FILE.open(encoding="utf-8") as fh:
        committed = yaml.safe_load(fh)
    assert committed == app.openapi(), (
        "openapi.yaml is out of date with the app: regenerate it with `walletsvc openapi -o openapi.yaml`"
    )


def test_design_routes_that_exist_are_documented(app: Any) -> None:
    served = _app_routes(app)
    paths = app.openapi()["paths"]
    present = [route for route in DESIGN_ROUTES if route in served]
    # The routes built so far; this list only grows.
    for route in [
        ("POST", "/v1/admin/tenants"),
        ("GET", "/v1/wallet"),
        ("POST", "/v1/admin/tenants/{tenant_id}/adjustments"),
        ("GET", "/v1/transactions"),
        ("POST", "/v1/admin/api-keys"),
        ("GET", "/healthz"),
    ]:
        assert route in present, route
    undocumented = [f"{m} {p}" for m, p in present if m.lower() not in paths.get(p, {})]
    assert not undocumented, f"served but missing from the OpenAPI document: {undocumented}"
    for method, path in DOCS_ROUTES:
        assert (method, path) in served


def test_every_documented_operation_is_served(app: Any) -> None:
    served = _app_routes(app)
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert documented <= served, documented - served


# Routes that take no bearer credential (DESIGN.md): a pricing page, and the browser back from Stripe.
PUBLIC_OPERATIONS = {("GET", "/v1/plans"), ("GET", "/v1/topups/stripe/return")}


@pytest.mark.parametrize("status", ["401", "422"])
def test_every_v1_operation_documents_its_problems(app: Any, status: str) -> None:
    spec = app.openapi()
    missing = []
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/") or path.startswith("/v1/webhooks/"):
            continue
        for method, operation in operations.items():
            if status == "401" and (method.upper(), path) in PUBLIC_OPERATIONS:
                continue  # takes no credentials, so never answers 401
            response = operation.get("responses", {}).get(status)
            if response is None or "application/problem+json" not in response.get("content", {}):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"operations that don't document a {status} problem: {missing}"


def test_every_operation_has_a_summary_and_a_unique_id(app: Any) -> None:
    ids = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path}"
            ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))


def test_money_amounts_are_documented_as_integers(app: Any) -> None:
    schemas = app.openapi()["components"]["schemas"]
    money = schemas["MoneyOut"]
    assert money["properties"]["amount"]["type"] == "integer"
    assert money["properties"]["currency"]["type"] == "string"
    adjustment = schemas["AdjustmentCreate"]
    assert adjustment["properties"]["amount"]["type"] == "integer"
    assert "reason" in adjustment["required"]
