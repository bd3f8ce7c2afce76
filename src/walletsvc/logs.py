"""JSON logs, each line carrying the request id; secrets, card numbers and signatures scrubbed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.exc import StatementError

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Belt and braces: nothing should log these, but if something does, the line is scrubbed.
_SECRET_PATTERNS = [
    re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]+"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"),
    re.compile(r"\bwsk_[A-Za-z0-9]+_[A-Za-z0-9_-]+"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # a JWT
    re.compile(r"\bv1=[0-9a-f]{16,}"),  # a Stripe signature
    re.compile(r"\b[0-9a-f]{64}\b"),  # an HMAC-SHA256 hex digest (Razorpay signatures)
    re.compile(r"\b(?:\d[ -]?){13,19}\b"),  # a card number
]


def scrub(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if record.args:
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        return True


class _ScrubbingFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))

    def formatException(self, ei: Any) -> str:  # one string: exc_info_as_array is off
        # Formatted without the data of a statement that failed: SQLAlchemy's `[parameters: ...]` and
        # PostgreSQL's DETAIL ("Failing row contains (...)", "Key (...)=(...)", which asyncpg appends to
        # its messages) would put webhook payloads and descriptions into the log.
        chain = list(_exception_chain(ei[1]))
        for exc in chain:
            if isinstance(exc, StatementError):
                exc.hide_parameters = True
        formatted = logging.Formatter.formatException(self, ei)
        for exc in chain:
            detail = getattr(exc, "detail", None)
            if isinstance(detail, str) and detail:
                formatted = formatted.replace(f"\nDETAIL:  {detail}", "\nDETAIL:  [hidden]")
        return formatted


def _exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [current.__cause__, current.__context__]


def json_handler(stream: TextIO) -> logging.Handler:
    """JSON lines with the request id, scrubbed, onto `stream`."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(
        _ScrubbingFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    return handler


def configure_logging(level: str = "INFO") -> None:
    handler = json_handler(sys.stdout)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True  # our own access line replaces it
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command it runs at INFO
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
