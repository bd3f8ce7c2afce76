"""The lean entry point of `POST /v1/usage`: a thin ASGI adapter over api/telephony.py.

FastAPI resolves a route and its dependencies in about a millisecond of CPU, several times what the
charge itself costs once the writer coalesces it. This middleware answers a request without an
Idempotency-Key itself, by the very functions the documented route calls (telephony.usage_caller,
usage_body, charge) and with the one error mapping (api/errors.py); what it adds is what FastAPI would
do around them: read the bearer credential and the body, and turn a raised error into its answer. It runs
behind the BodyGuard (api/body_guard.py), which has already refused what either entry point would refuse
at the door (size, media type, undecodable JSON, duplicate keys, two Authorization headers) and decoded
the body once. A request with an Idempotency-Key goes on to the documented route, which claims it.

`create_app(lean_usage_path=False)` builds the app without it, so that the usage tests run through both.
"""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from walletsvc.api import telephony
from walletsvc.api.body_guard import BODY_SCOPE_KEY, CheckedBody
from walletsvc.api.deps import bearer_scheme
from walletsvc.api.errors import problem_for, validation_problem
from walletsvc.db.faults import database_unavailable
from walletsvc.domain.errors import WalletError

PATH = "/v1/usage"
_ROUTE = SimpleNamespace(path=PATH)  # what the access log and the metrics name the route by


class FastUsagePath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        checked: CheckedBody | None = scope.get(BODY_SCOPE_KEY)
        if checked is None or any(name == b"idempotency-key" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)  # the documented route claims the key
            return
        scope["route"] = _ROUTE
        request = Request(scope, receive)
        response = await _answer(request, checked)
        await response(scope, receive, send)


async def _answer(request: Request, body: CheckedBody) -> Response:
    try:
        caller = await telephony.usage_caller(request, await bearer_scheme(request))
        usage = telephony.usage_body(body.raw, body.document)
        return await telephony.charge(request.app.state.charge_writer, usage, caller)
    # The exception handlers' part (api/errors.install_error_handlers), for a request they never see.
    except RequestValidationError as exc:
        return validation_problem(exc, request)
    except WalletError as exc:  # DatabaseUnavailable too: 503 with Retry-After
        return problem_for(exc, request)
    except Exception as exc:
        unavailable = database_unavailable(exc)  # a driver error or a pool timeout that nothing translated
        if unavailable is None:
            raise
        return problem_for(unavailable, request)
