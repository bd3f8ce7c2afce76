"""The middleware that gives every request an id, a log line and a measurement, and answers what no
handler took inside that context: 503 for a lost or unreachable database, else a 500."""

from __future__ import annotations

import logging
import re
import secrets
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from walletsvc.api.errors import unhandled_error_response
from walletsvc.api.metrics import LATENCY, REQUESTS
from walletsvc.logs import request_id_var

log = logging.getLogger("walletsvc.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware), so that streamed responses stay streamed. It runs for every
    request, the telephony hot path's included: one wrapper around `send`, the metric series looked up
    once per (method, route, status), the access line built only when INFO is logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope["headers"])
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answer here, inside the request's context, so it carries the request id.
            if started_response:
                raise
            await unhandled_error_response(exc)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            counter, latency = _series(method, template, status)
            counter.inc()
            latency.observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID (the last one, if sent twice) if it is well formed, else a new one."""
    incoming = b""
    for name, value in headers:
        if name == b"x-request-id":
            incoming = value
    if incoming:
        text = incoming.decode("latin-1")
        if _REQUEST_ID.match(text):
            return text
    return secrets.token_hex(16)


_Series = tuple[Counter, Histogram]  # a request counter's and a latency histogram's labelled children
_SERIES: dict[tuple[str, str, int], _Series] = {}


def _series(method: str, template: str, status: int) -> _Series:
    """The labelled metric children of one (method, route, status): `labels()` takes a lock and builds
    its key on every call, so each series is looked up once. As many as Prometheus itself keeps."""
    key = (method, template, status)
    found = _SERIES.get(key)
    if found is None:
        found = _SERIES[key] = (
            REQUESTS.labels(method, template, str(status)),
            LATENCY.labels(method, template),
        )
    return found
