"""CORS for browser portals on the origins in CORS_ALLOWED_ORIGINS (none by default).

Starlette's CORSMiddleware does the work, wrapped so that:

- webhook routes (`/v1/webhooks/*`) never get a CORS header: providers are not browsers, and no page
  may post forged events from a visitor's browser. Their preflight is not answered (405, no Allow-*);
- a request from an origin that is not listed passes through untouched, as if CORS did not exist: no
  `Access-Control-*` header, so the browser keeps the answer from the page (its preflight gets 405);
- a preflight refused for its method or headers is a problem+json (403 FORBIDDEN), not plain text;
- every answer to an allowed origin carries the CORS headers, errors included: the 401/4xx problems
  answered by the routes, and the 500/503 of an exception no handler took, which is rendered here
  (with the same function RequestContextMiddleware uses) so that the SPA can read the error and its
  `request_id`.

Registered right inside RequestContextMiddleware, so preflights and refusals carry `X-Request-ID` too.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from walletsvc.api.errors import problem_for, unhandled_error_response
from walletsvc.domain.errors import Forbidden

# What portals send and what they read (Idempotent-Replayed on a replay, Retry-After on a 503,
# Content-Disposition on the CSV export, X-Request-ID to quote in a ticket).
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")
EXPOSED_HEADERS = ("X-Request-ID", "Idempotent-Replayed", "Retry-After", "Content-Disposition")
PREFLIGHT_MAX_AGE = 600  # seconds a browser may keep a preflight's answer
WEBHOOK_PREFIX = "/v1/webhooks"


def is_webhook_path(path: str) -> bool:
    return path == WEBHOOK_PREFIX or path.startswith(WEBHOOK_PREFIX + "/")


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class _AnswerErrors:
    """The app, with an exception that no handler took answered here (inside the CORS wrapper, so the
    answer gets its headers) instead of further out in RequestContextMiddleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            await unhandled_error_response(exc)(scope, receive, tracked)


class PortalCors:
    def __init__(self, app: ASGIApp, *, allowed_origins: Sequence[str]) -> None:
        self.app = app
        self.origins = frozenset(allowed_origins)
        self.cors = CORSMiddleware(
            _AnswerErrors(app),
            allow_origins=sorted(self.origins),
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=True,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.origins or is_webhook_path(_route_path(scope)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin not in self.origins:
            await self.app(scope, receive, _vary_on_origin(send))
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(scope, receive, send, headers)
            return
        await self.cors.simple_response(scope, receive, send, request_headers=headers)

    async def _preflight(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        answer = self.cors.preflight_response(request_headers=headers)
        if answer.status_code < 400:
            await answer(scope, receive, send)
            return
        # Starlette says which part failed ("Disallowed CORS method, headers"); say what is allowed.
        detail = (
            f"{bytes(answer.body).decode()}: allowed methods {', '.join(ALLOWED_METHODS)}; "
            f"allowed headers {', '.join(ALLOWED_HEADERS)} (and the CORS-safelisted ones)"
        )
        refusal = problem_for(Forbidden(detail), Request(scope))
        refusal.headers["Vary"] = answer.headers["Vary"]
        await refusal(scope, receive, send)


def _vary_on_origin(send: Send) -> Send:
    """Answers differ by Origin once CORS is on: tell caches, even where no CORS header is sent."""

    async def send_with_vary(message: Message) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            headers = MutableHeaders(scope=message)
            headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])
        await send(message)

    return send_with_vary
