"""Which failures are a lost or unreachable database (503 DATABASE_UNAVAILABLE), and which are not."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from walletsvc.api.errors import problem_for
from walletsvc.db.faults import database_unavailable
from walletsvc.domain.errors import ConnectionLost, DatabaseUnreachable, InvalidRequest


def _wrapped(error: BaseException, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    """As SQLAlchemy raises a driver error: a DBAPIError whose .orig was raised from the driver's."""
    adapted = Exception(str(error))
    adapted.__cause__ = error
    return sa_exc.DBAPIError("SELECT 1", None, adapted, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "reached_server"),
    [
        # One task meeting a connection whose FATAL was read while it sat idle: nothing was sent.
        (
            asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
            False,
        ),
        (asyncpg.InterfaceError("cannot perform operation: connection is closed"), False),
        (asyncpg.InterfaceError("cannot commit; the underlying connection is closed"), False),
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.CrashShutdownError("terminating connection because of crash of another process"), True),
        (asyncpg.ConnectionFailureError("could not receive data from server"), True),
    ],
)
def test_a_lost_connection_is_connection_lost_however_it_is_wrapped(
    error: Exception, reached_server: bool
) -> None:
    for raised in (error, _wrapped(error)):
        lost = database_unavailable(raised)
        assert isinstance(lost, ConnectionLost), raised
        assert lost.reached_server is reached_server
        assert not lost.retried


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"),
    ],
)
def test_no_connection_to_be_had_is_database_unreachable(error: Exception) -> None:
    assert isinstance(database_unavailable(error), DatabaseUnreachable)


def test_what_sqlalchemy_invalidated_as_a_disconnect_is_connection_lost() -> None:
    assert isinstance(database_unavailable(_wrapped(ValueError("gone"), invalidated=True)), ConnectionLost)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        # Two tasks on one connection would be a bug, never an outage to retry.
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        ValueError("not the database"),
        InvalidRequest("a refusal"),
        OSError("a file, not the database"),
    ],
)
def test_other_failures_are_not_the_database_being_unavailable(error: Exception) -> None:
    assert database_unavailable(error) is None
    assert database_unavailable(_wrapped(error)) is None


def test_only_an_explicit_cause_counts_not_an_error_being_handled() -> None:
    handled = ValueError("raised while handling a lost connection")
    handled.__context__ = asyncpg.ConnectionDoesNotExistError("gone")
    assert database_unavailable(handled) is None


def test_database_unavailable_is_a_503_with_retry_after() -> None:
    lost = problem_for(ConnectionLost(), None)
    assert lost.status_code == 503
    assert lost.headers["retry-after"] == "1"
    assert lost.headers["content-type"] == "application/problem+json"
    assert b'"code":"DATABASE_UNAVAILABLE"' in bytes(lost.body)
    unreachable = problem_for(DatabaseUnreachable(), None)
    assert unreachable.status_code == 503
    assert unreachable.headers["retry-after"] == "5"
