"""What the `walletsvc` command says when the user's setup is wrong: one line and exit 2, not a traceback.

A traceback is for a bug. A database URL that names a missing database, a server that is not running,
a settings value of the wrong type or a folder that does not exist are the user's to fix, so the command
says what is wrong and what to do, in one line on stderr.
"""

from __future__ import annotations

import errno
import logging
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from pydantic import ValidationError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from walletsvc.domain.errors import DatabaseUnavailable

EXIT_USAGE = 2  # every usage or configuration error, as argparse does for a bad option


class CliError(Exception):
    """A problem the user can fix: printed as one `error: ...` line, and the command exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


POSTGRES_URL_SHAPE = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def check_database_url(url: str) -> URL:
    """The parsed URL, or a CliError for one walletsvc cannot use (never echoing it: it holds a password)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CliError(f"DATABASE_URL is not a database URL; write {POSTGRES_URL_SHAPE}") from None
    if parsed.get_backend_name() != "postgresql":
        raise CliError(
            f"DATABASE_URL names a {parsed.get_backend_name()} database; walletsvc needs PostgreSQL: "
            f"write {POSTGRES_URL_SHAPE}, or unset it to use the embedded server"
        )
    if parsed.get_driver_name() != "asyncpg":
        raise CliError(
            f"DATABASE_URL asks for the {parsed.get_driver_name()} driver; walletsvc connects with "
            f"asyncpg: write {POSTGRES_URL_SHAPE}"
        )
    return parsed


def settings_problem(exc: ValidationError) -> CliError:
    """Settings that do not validate, named as the environment variables the user sets."""
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    name = "_".join(str(part) for part in first["loc"]).upper() or "settings"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return CliError(f"{name}: {first['msg']}{more}; fix it in the environment or .env")


# How a connection attempt fails at the socket (a missing unix socket is ENOENT).
_CONNECT_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNRESET, errno.EADDRNOTAVAIL, errno.ENOENT}
)


def _describe(url: URL) -> str:
    if url.host:
        return f"PostgreSQL at {url.host}:{url.port or 5432}"
    socket_dir = url.query.get("host")
    return f"PostgreSQL on the socket in {socket_dir}" if socket_dir else "PostgreSQL"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack and len(seen) < 32:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__context__, getattr(current, "orig", None), current.__cause__):
            if isinstance(linked, BaseException):
                stack.append(linked)


def explain_database_error(exc: BaseException, url: URL) -> str | None:
    """One line saying what went wrong reaching the database and what to do, or None when `exc` is not
    about reaching it (a bug: let it show its traceback)."""
    where = _describe(url)
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            name = url.database or url.username or "postgres"
            return f'{where} has no database "{name}": create it (createdb {name}) or fix DATABASE_URL'
        if isinstance(cause, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
            return f"{where} refused the credentials in DATABASE_URL ({cause}); fix the user or password"
        if isinstance(cause, asyncpg.UndefinedTableError):
            return f"the database has no walletsvc tables ({cause}): run `walletsvc migrate` first"
        if isinstance(cause, asyncpg.CannotConnectNowError):
            return f"{where} is starting up or shutting down; retry in a moment"
        if isinstance(cause, asyncpg.TooManyConnectionsError):
            return f"{where} has no free connection slot ({cause}); retry later or raise max_connections"
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return f'cannot resolve the host "{url.host}" in DATABASE_URL; fix DATABASE_URL'
        if isinstance(cause, ConnectionRefusedError):
            return f"{where} refused the connection (nothing listens there): start it, or fix DATABASE_URL"
        if isinstance(cause, TimeoutError):
            return (
                f"{where} did not answer in time: check that it runs and can be reached, or fix DATABASE_URL"
            )
        if isinstance(cause, OSError) and cause.errno in _CONNECT_ERRNOS and cause.strerror:
            return f"cannot connect to {where} ({cause.strerror}): start PostgreSQL, or fix DATABASE_URL"
    for cause in chain:
        if isinstance(cause, DatabaseUnavailable):
            return f"{where}: {cause.detail}"
    return None


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Inside: work on the database at `url`; a failure to reach it becomes a CliError."""
    parsed = make_url(url)
    # With logging unconfigured (a one-shot command), db/faults.py's warning for the server's log would
    # reach stderr through logging's last resort, beside the line said here.
    faults_log = logging.getLogger("walletsvc.db.faults")
    level = faults_log.level
    if not logging.getLogger().handlers:
        faults_log.setLevel(logging.ERROR)
    try:
        yield
    except Exception as exc:
        message = explain_database_error(exc, parsed)
        if message is None:
            raise
        raise CliError(message) from exc
    finally:
        faults_log.setLevel(level)


@contextmanager
def embedded_errors(data_dir: str) -> Iterator[None]:
    """Inside: start the embedded server; if its PostgreSQL would not start, say where its log is."""
    try:
        yield
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise CliError(
            f"the embedded PostgreSQL in {data_dir} did not start; its log is {data_dir}/log "
            "(or set DATABASE_URL to use another server)",
            code=1,
        ) from exc
    except OSError as exc:  # the folder cannot be made or written
        raise CliError(
            f"cannot use {data_dir} for the embedded PostgreSQL ({exc.strerror}); set DATA_DIR"
        ) from exc
