"""The one place where errors become HTTP: RFC 9457 problem+json with a stable `code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from walletsvc.api.metrics import REFUSALS
from walletsvc.db.faults import database_unavailable
from walletsvc.domain import errors as e
from walletsvc.logs import request_id_var

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# exception class -> (status, code, title). The most specific class wins (checked in MRO order).
ERROR_TABLE: dict[type[e.WalletError], tuple[int, str, str]] = {
    e.InsufficientFunds: (402, "INSUFFICIENT_FUNDS", "Insufficient funds"),
    e.NotFound: (404, "NOT_FOUND", "Not found"),
    e.AlreadyExists: (409, "ALREADY_EXISTS", "Already exists"),
    e.CurrencyMismatch: (422, "CURRENCY_MISMATCH", "Currency mismatch"),
    e.UnknownCurrency: (422, "VALIDATION_FAILED", "Unknown currency"),
    e.InvalidRequest: (422, "VALIDATION_FAILED", "Invalid request"),
    e.Unauthorized: (401, "UNAUTHORIZED", "Unauthorized"),
    e.Forbidden: (403, "FORBIDDEN", "Forbidden"),
    e.IdempotencyKeyReused: (422, "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key reused"),
    e.IdempotencyInProgress: (409, "IDEMPOTENCY_IN_PROGRESS", "Request in progress"),
    e.BelowMinimum: (422, "BELOW_MINIMUM", "Below the minimum"),
    e.AboveMaximum: (422, "ABOVE_MAXIMUM", "Above the maximum"),
    e.InvalidSignature: (400, "INVALID_SIGNATURE", "Invalid signature"),
    e.InvalidPayment: (400, "INVALID_PAYMENT", "Invalid payment"),
    e.ProviderNotConfigured: (503, "PROVIDER_NOT_CONFIGURED", "Payment provider not configured"),
    e.ProviderUnavailable: (503, "PROVIDER_UNAVAILABLE", "Payment provider unavailable"),
    e.Conflict: (409, "CONFLICT", "Conflict"),
    e.AutoTopupLocked: (409, "AUTO_TOPUP_LOCKED", "Auto top-up locked by an admin"),
    e.NoPaymentMethod: (422, "NO_PAYMENT_METHOD", "No saved payment method"),
    e.PeriodNotEnded: (409, "PERIOD_NOT_ENDED", "Period not ended"),
    e.WebhookUrlNotAllowed: (422, "WEBHOOK_URL_NOT_ALLOWED", "Webhook URL not allowed"),
    e.WebhookSecretsNotConfigured: (503, "WEBHOOK_SECRETS_NOT_CONFIGURED", "Webhook secrets not configured"),
    # Lost or unreachable (ConnectionLost, DatabaseUnreachable): retry, with Retry-After.
    e.DatabaseUnavailable: (503, "DATABASE_UNAVAILABLE", "Database unavailable"),
}

_HTTP_CODES = {
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    413: ("PAYLOAD_TOO_LARGE", "Payload too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
}


def _extras(exc: e.WalletError) -> dict[str, Any]:
    if isinstance(exc, e.UsageOwed):
        money = {"currency": exc.currency}
        return {
            "charge_id": str(exc.charge_id),
            "amount": {"amount": exc.amount, **money},
            "charged": {"amount": exc.charged, **money},
            "owed": {"amount": exc.owed, **money},
            "available": {"amount": exc.available, **money},
        }
    if isinstance(exc, e.InsufficientFunds):
        return {
            "available": {"amount": exc.available, "currency": exc.currency},
            "requested": {"amount": exc.requested, "currency": exc.currency},
        }
    if isinstance(exc, e.CurrencyMismatch):
        return {"expected_currency": exc.expected, "currency": exc.got}
    if isinstance(exc, e.BelowMinimum):
        return {"minimum": {"amount": exc.minimum, "currency": exc.currency}}
    if isinstance(exc, e.AboveMaximum):
        return {"maximum": {"amount": exc.maximum, "currency": exc.currency}}
    if isinstance(exc, e.WebhookSecretsNotConfigured):
        return {"settings": ["WEBHOOK_SECRETS_KEY"]}
    if isinstance(exc, e.InvalidBillingDetails):
        return {"errors": [{"loc": ["body", exc.field], "msg": exc.reason, "type": "billing_details"}]}
    if isinstance(exc, e.InvalidEmailAddress):
        return {"errors": [{"loc": ["body", "emails", str(exc.index)], "msg": exc.reason, "type": "email"}]}
    if isinstance(exc, e.ProviderNotConfigured) and exc.settings:
        return {"settings": list(exc.settings)}
    return {}


def problem_document(
    status: int, code: str, title: str, detail: str | None, request: Request | None, **extra: Any
) -> dict[str, Any]:
    """The problem+json body itself (a batch puts one in each refused record's result)."""
    return {
        "type": f"urn:walletsvc:problem:{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "instance": request.url.path if request is not None else None,
        "request_id": request_id_var.get(),
        **extra,
    }


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None,
    request: Request | None,
    *,
    retry_after: int | None = None,
    **extra: Any,
) -> JSONResponse:
    return _answer(problem_document(status, code, title, detail, request, **extra), retry_after=retry_after)


def _answer(body: dict[str, Any], *, retry_after: int | None = None) -> JSONResponse:
    status = body["status"]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if body["code"] == "PROVIDER_UNAVAILABLE":
        headers = {"Retry-After": "30"}
    if retry_after is not None:
        headers = {"Retry-After": str(retry_after)}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _mapped(exc: e.WalletError) -> tuple[int, str, str]:
    """(status, code, title) of a refusal, counted in the refusals metric."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            status, code, title = ERROR_TABLE[cls]
            break
    else:  # a WalletError subclass nobody mapped: still a client-facing refusal, never a 500
        status, code, title = 400, "BAD_REQUEST", "Bad request"
    REFUSALS.labels(code).inc()
    return status, code, title


def refusal_document(exc: e.WalletError, request: Request | None) -> dict[str, Any]:
    """The problem document problem_for answers, for a refusal that is one part of an answer (a record of
    a batch). Its `status` is the status that refusal alone would have had."""
    status, code, title = _mapped(exc)
    log.info("request refused", extra={"code": code, "status": status})
    return problem_document(status, code, title, exc.detail, request, **_extras(exc))


def problem_for(exc: e.WalletError, request: Request | None) -> JSONResponse:
    if not isinstance(exc, e.DatabaseUnavailable):
        return _answer(refusal_document(exc, request))
    status, code, title = _mapped(exc)
    # What went wrong by its kind only: a driver's message may carry the statement's data.
    cause = exc.__cause__
    log.warning(
        "database unavailable",
        extra={"code": code, "error": type(exc).__name__, "cause": type(cause).__name__ if cause else None},
    )
    return problem(status, code, title, exc.detail, request, retry_after=exc.retry_after_seconds)


def validation_document(exc: RequestValidationError, request: Request) -> dict[str, Any]:
    """The VALIDATION_FAILED document validation_problem answers (a batch puts one in a record's result)."""
    # The offending input is left out: it may be a secret or a signature.
    errors = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(err['loc'])}: {err['msg']}" for err in errors[:5])
    return problem_document(422, "VALIDATION_FAILED", "Validation failed", detail, request, errors=errors)


def validation_problem(exc: RequestValidationError, request: Request) -> JSONResponse:
    return _answer(validation_document(exc, request))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.WalletError)
    async def _wallet_error(request: Request, exc: e.WalletError) -> JSONResponse:
        return problem_for(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # The framework's "error parsing the body" (nesting too deep, a number too long): bad input.
            return problem(422, "VALIDATION_FAILED", "Validation failed", str(exc.detail), request)
        code, title = _HTTP_CODES.get(exc.status_code, ("HTTP_ERROR", "HTTP error"))
        response = problem(exc.status_code, code, title, str(exc.detail), request)
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response


def unexpected_error_response() -> JSONResponse:
    """The 500 answer, built inside the request context (so it carries the request id)."""
    log.exception("unhandled error")
    return problem(500, "INTERNAL_ERROR", "Internal error", "an unexpected error; quote the request_id", None)


def unhandled_error_response(exc: Exception) -> JSONResponse:
    """The answer for an exception no handler took: 503 DATABASE_UNAVAILABLE when it is a lost or
    unreachable database (a pool timeout, a driver error from the raw asyncpg path), else the 500."""
    unavailable = database_unavailable(exc)
    if unavailable is not None:
        return problem_for(unavailable, None)
    return unexpected_error_response()
