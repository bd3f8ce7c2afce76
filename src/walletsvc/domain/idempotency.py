"""Idempotency-Key rules: what a repeated key means, decided from the stored record alone."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from walletsvc.domain.errors import IdempotencyInProgress, IdempotencyKeyReused, InvalidRequest

MAX_KEY_LENGTH = 255


class Outcome(StrEnum):
    REPLAY = "replay"  # the first request finished: answer what it answered
    TAKE_OVER = "take_over"  # the first request died without finishing: run again


@dataclass(frozen=True, slots=True)
class StoredRequest:
    fingerprint: str
    completed: bool
    locked_at: datetime


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters")
    return key


def fingerprint(method: str, path: str, body: bytes) -> str:
    """A digest of the request; JSON bodies are canonicalised so key order and spacing don't matter."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def decide(stored: StoredRequest, fingerprint: str, *, now: datetime, lock_timeout: timedelta) -> Outcome:
    """What a request carrying an already-seen key gets."""
    if stored.fingerprint != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
    if stored.completed:
        return Outcome.REPLAY
    if now - stored.locked_at < lock_timeout:
        raise IdempotencyInProgress("a request with this Idempotency-Key is still being processed")
    return Outcome.TAKE_OVER
