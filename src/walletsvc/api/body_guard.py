"""Every request, checked once at the door before any route (or the lean usage path) reads it.

- One `Authorization` header at most: with two, one part of the stack could read the first and another
  the last (401).
- A body of at most MAX_BODY_BYTES, whether Content-Length says so or a chunked body grows past it; no
  more than that is ever held in memory (413).
- A non-empty body is JSON: `Content-Type` `application/json` or `application/*+json` (charset UTF-8 if
  one is named), or no Content-Type at all, which is read as JSON (415 otherwise).
- It decodes as UTF-8 JSON with no key twice in one object, at any depth (422, like FastAPI's own
  "JSON decode error"): `{"amount": 1, "amount": -999}` must not mean whatever the last parser decides.

What passes is handed on byte for byte (webhook signatures are computed over the raw body), and the
decoded document rides along in the scope so the hot path does not decode it a second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from walletsvc.api.errors import _HTTP_CODES, problem, problem_for, validation_problem
from walletsvc.domain.errors import Unauthorized

BODY_SCOPE_KEY = "walletsvc.checked_body"
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class CheckedBody:
    """A body that passed the guard: its bytes, and (when there were any) the JSON they decode to."""

    raw: bytes
    document: Any = None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


# Built once: json.loads(..., object_pairs_hook=...) would build a decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


class BodyGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorizations = 0
        content_length: bytes | None = None
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorizations += 1
            elif name == b"content-length":
                content_length = value
            elif name == b"content-type" and content_type is None:  # the first, as Starlette reads it
                content_type = value
        if authorizations > 1:
            refusal = problem_for(Unauthorized("send one Authorization header, not several"), Request(scope))
            await refusal(scope, receive, send)
            return
        if content_length is not None and _declared_too_long(content_length, self.max_body_bytes):
            await self._too_large(scope, receive, send)
            return
        try:
            raw = await _read(receive, self.max_body_bytes)
        except _TooLarge:
            await self._too_large(scope, receive, send)
            return
        if raw is None:  # the client went away mid-body: nobody to answer
            return
        checked = CheckedBody(raw)
        if raw:
            if content_type is None:
                # No Content-Type is read as JSON, on every route alike (FastAPI alone would not parse it).
                scope["headers"] = [*scope["headers"], _JSON_CONTENT_TYPE]
            elif not _is_json(content_type):
                await _unsupported(scope, receive, send)
                return
            try:
                checked = CheckedBody(raw, _decode(raw))
            except ValueError as exc:  # JSON, UTF-8, duplicate keys, too many digits
                refusal = validation_problem(RequestValidationError([_json_error(exc)]), Request(scope))
                await refusal(scope, receive, send)
                return
            except RecursionError:
                error = _error(None, "the JSON is nested too deeply")
                refusal = validation_problem(RequestValidationError([error]), Request(scope))
                await refusal(scope, receive, send)
                return
        scope[BODY_SCOPE_KEY] = checked
        await self.app(scope, _replay(raw, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        code, title = _HTTP_CODES[413]
        detail = f"the request body is larger than {self.max_body_bytes} bytes"
        await problem(413, code, title, detail, Request(scope))(scope, receive, send)


async def _unsupported(scope: Scope, receive: Receive, send: Send) -> None:
    code, title = _HTTP_CODES[415]
    detail = "send the body as JSON: Content-Type: application/json"
    await problem(415, code, title, detail, Request(scope))(scope, receive, send)


def _declared_too_long(content_length: bytes, limit: int) -> bool:
    # The server has checked the header already; an absurd one (thousands of digits) is too long too.
    digits = content_length.strip()
    if not digits.isdigit():
        return False
    return len(digits) > 18 or int(digits) > limit


class _TooLarge(Exception):
    pass


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None if the client disconnected; _TooLarge as soon as it passes `limit`."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise _TooLarge
    if not message.get("more_body", False):
        return body  # the usual case: one message, nothing to join
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, exactly as it came; after it, the real channel (for the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _is_json(content_type: bytes) -> bool:
    """`application/json` or `application/*+json` (what FastAPI parses), in UTF-8 if a charset is named."""
    media, *params = content_type.decode("latin-1").split(";")
    maintype, _, subtype = media.strip().lower().partition("/")
    if maintype != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False  # JSON is UTF-8 (RFC 8259); another charset means the client misread its bytes
    return True


def _decode(raw: bytes) -> Any:
    # Decoded as UTF-8 strictly: json.loads(bytes) would guess UTF-16 or UTF-32 from the first bytes.
    return _DECODER.decode(raw.decode("utf-8"))


def _error(position: int | None, reason: str) -> dict[str, Any]:
    # The shape FastAPI gives a body it cannot decode: type json_invalid, at a character offset if known.
    loc = ("body",) if position is None else ("body", position)
    return {"type": "json_invalid", "loc": loc, "msg": f"JSON decode error: {reason}", "input": {}}


def _json_error(exc: ValueError) -> dict[str, Any]:
    if isinstance(exc, json.JSONDecodeError):
        return _error(exc.pos, exc.msg)
    if isinstance(exc, UnicodeDecodeError):
        return _error(exc.start, "the body is not UTF-8")
    if isinstance(exc, _DuplicateKey):
        shown = exc.key if len(exc.key) <= 64 else exc.key[:64] + "..."
        return _error(None, f"the key {shown!r} appears twice in one object")
    if "digits" in str(exc):  # int() refuses more than 4,300 digits
        return _error(None, "a number has too many digits")
    return _error(None, "the body cannot be decoded")
