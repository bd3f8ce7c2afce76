from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from walletsvc.domain.errors import IdempotencyInProgress, IdempotencyKeyReused, InvalidRequest
from walletsvc.domain.idempotency import Outcome, StoredRequest, check_key, decide, fingerprint

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LOCK = timedelta(seconds=60)


def test_json_key_order_and_spacing_do_not_change_the_fingerprint() -> None:
    a = fingerprint("POST", "/v1/x", b'{"amount": 5, "reason": "r"}')
    b = fingerprint("post", "/v1/x", b'{"reason":"r","amount":5}')
    assert a == b


def test_a_different_body_path_or_method_changes_the_fingerprint() -> None:
    base = fingerprint("POST", "/v1/x", b'{"amount": 5}')
    assert fingerprint("POST", "/v1/x", b'{"amount": 6}') != base
    assert fingerprint("POST", "/v1/y", b'{"amount": 5}') != base
    assert fingerprint("PUT", "/v1/x", b'{"amount": 5}') != base


def test_non_json_bodies_are_fingerprinted_raw() -> None:
    assert fingerprint("POST", "/v1/x", b"not json") != fingerprint("POST", "/v1/x", b"not json!")


def test_completed_request_replays() -> None:
    stored = StoredRequest(fingerprint="f", completed=True, locked_at=NOW)
    assert decide(stored, "f", now=NOW, lock_timeout=LOCK) is Outcome.REPLAY


def test_different_request_with_the_same_key_is_refused() -> None:
    stored = StoredRequest(fingerprint="f", completed=True, locked_at=NOW)
    with pytest.raises(IdempotencyKeyReused):
        decide(stored, "g", now=NOW, lock_timeout=LOCK)


def test_request_still_running_is_refused_as_in_progress() -> None:
    stored = StoredRequest(fingerprint="f", completed=False, locked_at=NOW - timedelta(seconds=5))
    with pytest.raises(IdempotencyInProgress):
        decide(stored, "f", now=NOW, lock_timeout=LOCK)


def test_request_that_died_is_taken_over_after_the_lock_times_out() -> None:
    stored = StoredRequest(fingerprint="f", completed=False, locked_at=NOW - timedelta(seconds=61))
    assert decide(stored, "f", now=NOW, lock_timeout=LOCK) is Outcome.TAKE_OVER


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey"])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidRequest):
        check_key(key)
