"""The telephony hot path, `POST /v1/usage`, served without FastAPI's routing and dependency machinery.

FastAPI resolves a route and its dependencies in about a millisecond of CPU, several times what the
charge itself costs once the writer coalesces it. This ASGI middleware answers the plain case itself
with the very same pieces the documented route uses (the UsageIn schema, the authenticator, the charge
writer, the one error mapping in api/errors.py), so both answer alike. Anything unusual (an
Idempotency-Key, a body over 64 KiB) goes on to the documented route.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from walletsvc.api.errors import problem_for, validation_problem
from walletsvc.api.routers.usage import charge_answer, usage_record
from walletsvc.api.schemas.charging import UsageIn
from walletsvc.domain.access import Principal
from walletsvc.domain.access import Scope as AccessScope
from walletsvc.domain.errors import Unauthorized, WalletError
from walletsvc.services.auth import Authenticator
from walletsvc.services.charging import ChargeWriter

PATH = "/v1/usage"
MAX_BODY = 64 * 1024
_ROUTE = SimpleNamespace(path=PATH)  # what the access log and the metrics name the route by


class FastUsagePath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"idempotency-key" in headers:
            await self.app(scope, receive, send)
            return
        body, more = await _read(receive)
        if more or len(body) > MAX_BODY:
            await self.app(scope, _replay(body, receive, more), send)
            return
        scope["route"] = _ROUTE
        request = Request(scope)
        response = await _answer(request, headers, body)
        await response(scope, receive, send)


async def _read(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > MAX_BODY:
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive, more: bool) -> Receive:
    """Hand the documented route what was already read, then the rest of the stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


async def _answer(request: Request, headers: dict[bytes, bytes], body: bytes) -> Response:
    state = request.app.state
    try:
        caller = await _authenticate(state.authenticator, state.db, headers.get(b"authorization", b""))
        try:
            usage = UsageIn.model_validate_json(body)
        except ValidationError as exc:
            return validation_problem(RequestValidationError(_body_errors(exc)), request)
        writer: ChargeWriter = state.charge_writer
        return charge_answer(await writer.charge(usage_record(usage, caller)))
    except WalletError as exc:
        return problem_for(exc, request)


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
