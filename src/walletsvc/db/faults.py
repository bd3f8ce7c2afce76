"""A lost or unreachable database, told apart from every other failure; and dead connections kept out of
the pool.

PostgreSQL ends a connection (pg_terminate_backend, a restart, a failover) by sending a FATAL error and
closing the socket; a network cut just closes it. What asyncpg raises depends on when it notices:
`ConnectionDoesNotExistError` for a statement in flight; `InterfaceError` "connection is closed" for one
started after the close was seen; and `InternalClientError` "cannot switch to state N; another operation
(2) is in progress" for one started after the FATAL was read from an idle connection but before the close
was: its protocol is then in state 2 (discarding an error until a ReadyForQuery that never comes), and
asyncpg aborts the connection. That message is not two tasks sharing a connection (a second task would
be refused with "cannot perform operation: another operation is in progress"); it is one task meeting a
connection the server had just ended.

`install(engine)` makes the engine raise the domain's ConnectionLost / DatabaseUnreachable for all of
these (marking them disconnects, so SQLAlchemy invalidates the connection and never hands it out again),
refuse at checkout a pooled connection that is already closed (free: no round trip), and note commits
and writes for request_effects. `database_unavailable(exc)` classifies what reaches the surface by other
ways: the charge writer's raw asyncpg statements, which SQLAlchemy never sees, and the pool's timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from walletsvc.domain.errors import ConnectionLost, DatabaseUnavailable, DatabaseUnreachable
from walletsvc.request_effects import note_commit, note_statement

log = logging.getLogger(__name__)

T = TypeVar("T")

# 57P01 admin_shutdown (pg_terminate_backend, a fast shutdown), 57P02 crash_shutdown, 57P03
# cannot_connect_now (starting up, shutting down, in recovery), 53300 too_many_connections; and class 08,
# connection exceptions.
_LOST_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it explicitly wraps (`raise ... from`, SQLAlchemy's `.orig`); never the
    implicit context, which may be an unrelated error that was being handled."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack and len(seen) < 16:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None) if isinstance(current, sa_exc.DBAPIError) else None
        for wrapped in (orig, current.__cause__):
            if isinstance(wrapped, BaseException):
                stack.append(wrapped)


def _lost_by_driver(exc: BaseException) -> DatabaseUnavailable | None:
    if isinstance(exc, DatabaseUnavailable):
        return exc
    lost = _lost_by_driver_error(exc)
    return _caused(lost, exc) if lost is not None else None


def _lost_by_driver_error(exc: BaseException) -> DatabaseUnavailable | None:
    if isinstance(exc, asyncpg.InternalClientError):
        # The protocol refused to start the statement ("cannot switch to state ..."): nothing was sent.
        return ConnectionLost(reached_server="cannot switch to state" not in str(exc))
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        # "connection is closed", "the underlying connection is closed": refused before sending.
        return ConnectionLost(reached_server=False)
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        if state == "57P03" or state == "53300":
            return DatabaseUnreachable()
        if state in _LOST_STATES or state.startswith("08"):
            return ConnectionLost()
    return None


def database_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable that `exc` amounts to, or None when it is something else (a bug, a
    statement the database refused)."""
    chain = list(_chain(exc))
    for current in chain:
        lost = _lost_by_driver(current)
        if lost is not None:
            return lost
    for current in chain:
        if isinstance(current, sa_exc.TimeoutError):  # the pool's: every connection stayed busy
            return _caused(DatabaseUnreachable("no database connection became free in time"), current)
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return _caused(ConnectionLost(), current)
    return None


def _caused(lost: DatabaseUnavailable, by: BaseException) -> DatabaseUnavailable:
    lost.__cause__ = by
    return lost


async def once_more_if_lost(work: Callable[[], Awaitable[T]]) -> T:
    """Run work whose every effect is in one database transaction (or that only reads); if its connection
    was lost, run it once more on a fresh one. A database that cannot be reached is not tried again."""
    try:
        return await work()
    except Exception as exc:
        lost = database_unavailable(exc)
        if not isinstance(lost, ConnectionLost) or lost.retried:
            raise
        log.warning("database connection lost; running the work once more on a fresh connection")
    try:
        return await work()
    except Exception as exc:
        lost = database_unavailable(exc)
        if not isinstance(lost, ConnectionLost):
            raise
        raise ConnectionLost(reached_server=lost.reached_server, retried=True) from exc


def install(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine
    event.listen(sync_engine, "do_connect", _connect)
    event.listen(sync_engine, "checkout", _refuse_closed)
    event.listen(sync_engine, "handle_error", _translate)
    event.listen(sync_engine, "commit", _noted_commit)
    event.listen(sync_engine, "before_cursor_execute", _noted_statement)


def _connect(dialect: Dialect, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        # Only the kind: the message may name the host, the user or the database.
        log.warning("cannot connect to the database", extra={"error": type(exc).__name__})
        if isinstance(database_unavailable(exc), ConnectionLost):
            # Ended while it was being set up (a backend terminated as it started): try again at once.
            raise ConnectionLost(reached_server=False) from exc
        raise DatabaseUnreachable() from exc


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        # The pool discards it and hands out a fresh connection instead.
        raise sa_exc.DisconnectionError("the server closed this pooled connection")


def _translate(context: ExceptionContext) -> BaseException | None:
    original = context.original_exception
    if not isinstance(original, Exception):  # a cancellation or an exit: SQLAlchemy's own handling
        return None
    lost = next(filter(None, map(_lost_by_driver, _chain(original))), None)
    if lost is None and not context.is_disconnect:
        return None
    context.is_disconnect = True  # SQLAlchemy invalidates the connection (and the pool's older ones)
    return lost if lost is not None else ConnectionLost()


def _noted_commit(_connection: Any) -> None:
    note_commit()


def _noted_statement(
    _connection: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool
) -> None:
    note_statement(statement)
