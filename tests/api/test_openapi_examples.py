"""The API document shows a request and a response example for the operations the portal and telephony
teams use most; every example is a valid instance of its schema, with money as integers; and the
overview at its top covers auth, money, Idempotency-Key and every error code."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from walletsvc.api.docs import _models_with_examples
from walletsvc.api.errors import _HTTP_CODES, ERROR_TABLE

# (method, path) -> (status of the success answer, whether it takes a JSON body)
KEY_OPERATIONS = {
    ("post", "/v1/admin/tenants"): ("201", True),
    ("get", "/v1/admin/tenants/{tenant_id}"): ("200", False),
    ("get", "/v1/wallet"): ("200", False),
    ("post", "/v1/topups"): ("201", True),
    ("get", "/v1/topups/{topup_id}"): ("200", False),
    ("post", "/v1/topups/{topup_id}/razorpay/verify"): ("200", True),
    ("post", "/v1/calls/{call_id}/authorize"): ("200", True),
    ("post", "/v1/usage"): ("201", True),
    ("post", "/v1/usage/batch"): ("200", True),
    ("post", "/v1/admin/topups/{topup_id}/refunds"): ("201", True),
    ("post", "/v1/admin/charges/{charge_id}/refunds"): ("201", True),
    ("post", "/v1/webhooks/stripe"): ("200", True),
    ("post", "/v1/webhooks/razorpay"): ("200", True),
}


def _examples(spec: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """The examples shown for a request or response body: the media type's own, or its schema's."""
    found: list[Any] = []
    if "example" in media:
        found.append(media["example"])
    found += [e["value"] for e in media.get("examples", {}).values()]
    ref = media.get("schema", {}).get("$ref")
    if ref is not None:
        found += spec["components"]["schemas"][ref.rsplit("/", 1)[1]].get("examples", [])
    return found


@pytest.mark.parametrize(("method", "path"), sorted(KEY_OPERATIONS))
def test_key_operations_show_request_and_response_examples(app: Any, method: str, path: str) -> None:
    spec = app.openapi()
    operation = spec["paths"][path][method]
    status, takes_body = KEY_OPERATIONS[(method, path)]
    if takes_body:
        request = operation["requestBody"]["content"]["application/json"]
        assert _examples(spec, request), f"{method.upper()} {path}: no request example"
    response = operation["responses"][status]["content"]["application/json"]
    assert _examples(spec, response), f"{method.upper()} {path}: no {status} example"


def _models() -> list[type[BaseModel]]:
    return sorted(set(_models_with_examples()), key=lambda m: m.__name__)


def test_the_examples_cover_the_key_schemas() -> None:
    names = {m.__name__ for m in _models()}
    assert {
        "TenantCreate",
        "TenantOut",
        "WalletOut",
        "TopupCreate",
        "TopupCreated",
        "TopupDetail",
        "AuthorizeIn",
        "AuthorizeOut",
        "UsageIn",
        "ChargeOut",
        "UsageBatchIn",
        "UsageBatchOut",
        "RefundCreate",
        "RefundOut",
        "ChargeRefundIn",
        "ChargeRefundOut",
    } <= names


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_example_is_a_valid_instance_of_its_schema(model: type[BaseModel]) -> None:
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    examples = extra["examples"]
    assert isinstance(examples, list)
    assert examples
    for example in examples:
        model.model_validate(example)


def _floats(value: Any, where: str, *, in_example: bool = False) -> list[str]:
    if isinstance(value, float) and in_example:
        return [where]
    if isinstance(value, dict):
        return [
            f
            for k, v in value.items()
            for f in _floats(v, f"{where}.{k}", in_example=in_example or k in ("example", "examples"))
        ]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _floats(v, f"{where}[{i}]", in_example=in_example)]
    return []


def test_no_example_anywhere_in_the_document_holds_a_float(app: Any) -> None:
    spec = app.openapi()
    assert _floats(spec, "") == []
    assert _floats({"examples": [{"amount": 500.0}]}, "") == [".examples[0].amount"]  # the check works


def test_examples_keep_their_nulls(app: Any) -> None:
    # FastAPI leaves every null out of the document; docs.py puts the schemas' examples back whole.
    schemas = app.openapi()["components"]["schemas"]
    refused = schemas["AuthorizeOut"]["examples"][1]
    assert refused["allowed"] is False
    assert refused["hold"] is None
    assert schemas["TopupCreated"]["examples"][0]["credited"] is None


def test_the_overview_covers_auth_money_idempotency_errors_and_webhooks(app: Any) -> None:
    overview = app.openapi()["info"]["description"]
    for heading in ("## Authentication", "## Money", "## Idempotency-Key", "## Errors", "webhooks"):
        assert heading in overview
    for claim in ("`sub`", "`tenant_id`", "`role`", "`exp`", "`member`", "`owner`", "`super_admin`"):
        assert claim in overview
    for scope in ("`wallet:read`", "`wallet:write`", "`usage:write`", "`admin`"):
        assert scope in overview
    assert '{"amount": 50000, "currency": "INR"}' in overview
    assert "POST /v1/webhooks/stripe" in overview
    assert "POST /v1/webhooks/razorpay" in overview
    assert "http://" not in overview
    assert "https://" not in overview
    codes = {code for _, code, _ in ERROR_TABLE.values()} | {code for code, _ in _HTTP_CODES.values()}
    missing = [code for code in sorted(codes | {"INTERNAL_ERROR"}) if f"`{code}`" not in overview]
    assert not missing, f"error codes the overview does not list: {missing}"
