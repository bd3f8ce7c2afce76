"""Shapes shared by every resource: money, problems, pages."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from walletsvc.domain.errors import InvalidRequest

T = TypeVar("T")

# PostgreSQL text cannot hold a NUL character: refuse it at the edge (422) instead of failing in the database.
NO_NUL_PATTERN = r"^[^\x00]*$"


class MoneyOut(BaseModel):
    """An amount in the currency's minor unit (paise, cents; yen have none)."""

    amount: StrictInt = Field(examples=[50000])
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["INR"])

    @classmethod
    def of(cls, amount: int, currency: str) -> MoneyOut:
        return cls(amount=amount, currency=currency)


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable `code`."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    code: str = Field(examples=["INSUFFICIENT_FUNDS"])
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


def encode_cursor(value: int | str) -> str:
    raw = f"{type(value).__name__}:{value}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_int_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    kind, _, value = _decode(cursor)
    # isdigit() alone lets through "²" (int() refuses it) and numbers past PostgreSQL's bigint.
    if kind != "int" or not (value.isascii() and value.isdigit()) or int(value) >= 2**63:
        raise InvalidRequest("the cursor is not valid")
    return int(value)


def decode_str_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    kind, _, value = _decode(cursor)
    if kind != "str" or not value or not value.isprintable():  # PostgreSQL text cannot hold a NUL
        raise InvalidRequest("the cursor is not valid")
    return value


def _decode(cursor: str) -> tuple[str, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("the cursor is not valid") from exc
    return raw.partition(":")


def problem_responses(*statuses: int, public: bool = False) -> dict[int | str, dict[str, Any]]:
    """For a route's `responses=`: the problems it may answer, so that openapi.yaml shows them. Every
    route may answer 422; every route that takes credentials may answer 401."""
    return {
        status: {
            "model": Problem,
            "content": {"application/problem+json": {}},
            "description": _TITLES[status],
        }
        for status in sorted({422, *statuses} | (set() if public else {401}))
    }


_TITLES = {
    400: "Bad request (INVALID_PAYMENT, INVALID_SIGNATURE)",
    401: "UNAUTHORIZED: missing, wrong, expired or forged credentials",
    402: "INSUFFICIENT_FUNDS",
    403: "FORBIDDEN: the credentials may not do this",
    404: "NOT_FOUND",
    409: "IDEMPOTENCY_IN_PROGRESS, ALREADY_EXISTS, CONFLICT or PERIOD_NOT_ENDED",
    413: "PAYLOAD_TOO_LARGE: the body is larger than MAX_BODY_BYTES",
    415: "UNSUPPORTED_MEDIA_TYPE: the body is not sent as application/json",
    422: "VALIDATION_FAILED, IDEMPOTENCY_KEY_REUSED, CURRENCY_MISMATCH, BELOW_MINIMUM, ABOVE_MAXIMUM or "
    "WEBHOOK_URL_NOT_ALLOWED",
    503: "PROVIDER_NOT_CONFIGURED, PROVIDER_UNAVAILABLE or WEBHOOK_SECRETS_NOT_CONFIGURED",
}
