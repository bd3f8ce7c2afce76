"""The telephony hot path, `POST /v1/usage`, served without FastAPI's routing and dependency machinery.

FastAPI resolves a route and its dependencies in about a millisecond of CPU, several times what the
charge itself costs once the writer coalesces it. This ASGI middleware answers the plain case itself
with the very same pieces the documented route uses (the UsageIn schema, the authenticator, the charge
writer, the one error mapping in api/errors.py), so both answer alike. It runs behind the BodyGuard
(api/body_guard.py), which has already refused what the documented route would refuse at the door (size,
media type, undecodable JSON, duplicate keys, two Authorization headers) and decoded the body once; a
request with an Idempotency-Key goes on to the documented route.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from walletsvc.api.body_guard import BODY_SCOPE_KEY, CheckedBody
from walletsvc.api.errors import problem_for, validation_problem
from walletsvc.api.routers.usage import charge_answer, usage_record
from walletsvc.api.schemas.charging import UsageIn
from walletsvc.db.faults import database_unavailable, once_more_if_lost
from walletsvc.domain.access import Principal
from walletsvc.domain.access import Scope as AccessScope
from walletsvc.domain.errors import Unauthorized, WalletError
from walletsvc.services.auth import Authenticator
from walletsvc.services.charging import ChargeWriter

PATH = "/v1/usage"
_ROUTE = SimpleNamespace(path=PATH)  # what the access log and the metrics name the route by
# What FastAPI answers for a required body that is absent.
_MISSING_BODY = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}


class FastUsagePath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        checked: CheckedBody | None = scope.get(BODY_SCOPE_KEY)
        authorization = b""
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                checked = None
                break
            if name == b"authorization" and not authorization:  # the first, as Starlette reads it
                authorization = value
        if checked is None:  # an Idempotency-Key (or a body the guard did not see): the documented route
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTE
        request = Request(scope)
        response = await _answer(request, authorization, checked)
        await response(scope, receive, send)


async def _answer(request: Request, authorization: bytes, body: CheckedBody) -> Response:
    state = request.app.state
    try:
        # Reading the key is safe to repeat when its connection is lost (the writer repeats its own).
        caller = await once_more_if_lost(lambda: _authenticate(state.authenticator, state.db, authorization))
        if not body.raw:
            return validation_problem(RequestValidationError([_MISSING_BODY]), request)
        try:
            # The document the guard decoded, validated as FastAPI validates the documented route's body.
            usage = UsageIn.model_validate(body.document, from_attributes=True)
        except ValidationError as exc:
            return validation_problem(RequestValidationError(_body_errors(exc)), request)
        writer: ChargeWriter = state.charge_writer
        return charge_answer(await writer.charge(usage_record(usage, caller)))
    except WalletError as exc:  # DatabaseUnavailable too: 503 with Retry-After
        return problem_for(exc, request)
    except Exception as exc:
        unavailable = database_unavailable(exc)  # a driver error or a pool timeout that nothing translated
        if unavailable is None:
            raise
        return problem_for(unavailable, request)


async def _authenticate(authenticator: Authenticator, db: Any, authorization: bytes) -> Principal:
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send `Authorization: Bearer <token or API key>`")
    principal = authenticator.known(token.strip())
    if principal is None:  # an API key not seen in the last few seconds: read it from the database
        async with db.sessionmaker() as session:
            principal = await authenticator.authenticate(session, token.strip())
    principal.require(AccessScope.USAGE_WRITE)
    return principal


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors located in the body, as FastAPI reports them."""
    return [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
