"""What a request did besides its own database transaction, noted as it happens.

A request whose database connection died can be run again on a fresh connection only if everything it
did was in that (now rolled back) transaction. Two things are not: a call to a payment provider (money
may have moved; the provider's answer is not in the database) and a transaction committed on its own
before the end (a provider intent). The provider client and the engine note them here, and whether the
open transaction wrote anything; TransactionalRoute (api/routing.py) reads the note before it decides to
run a request again, or what a failed COMMIT means. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestEffects:
    outside_calls: int = 0  # calls to a payment provider (attempted: even a refused one counts)
    commits: int = 0  # database transactions committed while the request ran
    # Statements other than a SELECT since the last commit: none means a COMMIT has nothing to make
    # durable, so it does not matter whether one that failed happened.
    uncommitted_writes: int = 0

    @property
    def only_in_its_transaction(self) -> bool:
        return self.outside_calls == 0 and self.commits == 0


_current: ContextVar[RequestEffects | None] = ContextVar("walletsvc_request_effects", default=None)


@contextmanager
def tracking() -> Iterator[RequestEffects]:
    """Note what the code run inside this block does (in this task, and in threads it hands work to)."""
    effects = RequestEffects()
    token = _current.set(effects)
    try:
        yield effects
    finally:
        _current.reset(token)


@contextmanager
def untracked() -> Iterator[None]:
    """Work whose effects are accounted for elsewhere (the Idempotency-Key's own short transactions), or
    that is not the request's (a background task started from one)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def note_outside_call() -> None:
    effects = _current.get()
    if effects is not None:
        effects.outside_calls += 1


def note_commit() -> None:
    effects = _current.get()
    if effects is not None:
        effects.commits += 1
        effects.uncommitted_writes = 0


def note_statement(statement: str) -> None:
    effects = _current.get()
    if effects is not None and not statement.lstrip()[:6].upper().startswith("SELECT"):
        effects.uncommitted_writes += 1
