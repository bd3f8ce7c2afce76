"""The `walletsvc` command: serve, worker, migrate, keys create, ledger verify, reconcile, periods close,
openapi, token, wait.

A mistake in the setup or the arguments (a database that does not exist, a port in use, an unknown scope)
is one `error: ...` line on stderr and exit 2; see cli_errors.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from walletsvc import __version__
from walletsvc.cli_errors import (
    CliError,
    check_database_url,
    database_errors,
    embedded_errors,
    settings_problem,
)
from walletsvc.config import Settings, get_settings
from walletsvc.db.embedded import start_embedded
from walletsvc.db.engine import Database, normalise_url, unit_of_work
from walletsvc.db.migrate import upgrade_to_head
from walletsvc.domain.access import Role, Scope
from walletsvc.domain.errors import DatabaseUnavailable, WalletError
from walletsvc.logs import configure_logging
from walletsvc.serving import (
    WorkerChild,
    announce_when_ready,
    answers,
    bind_port,
    local_base_url,
    parent_gone,
    run_uvicorn,
)


def _say(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr, flush=True)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        raise settings_problem(exc) from exc


def _database(settings: Settings) -> tuple[str, str]:
    """The URL to use, and how to describe it (never printing a password)."""
    configured = settings.database_url.get_secret_value() if settings.database_url is not None else ""
    if configured:
        url = normalise_url(configured)
        parsed = check_database_url(url)
        return (
            url,
            f'"{parsed.database or parsed.username}" on {parsed.host or "a local socket"} (DATABASE_URL)',
        )
    data_dir = settings.data_dir.resolve()
    with embedded_errors(str(data_dir)):
        url = start_embedded(data_dir)
    return url, f"embedded PostgreSQL in {data_dir}"


def _migrate(url: str) -> None:
    with database_errors(url):
        upgrade_to_head(url)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level)
    host = args.host or settings.host
    # The port first: a clash is one line at once, before the database is started and migrated.
    sock = bind_port(host, args.port if args.port is not None else settings.port)
    # A SIGTERM, while migrating or after uvicorn's graceful shutdown (it re-raises the signal), exits
    # through atexit: pgserver's hook there is what stops the embedded PostgreSQL.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    worker: WorkerChild | None = None
    try:
        url, where = _database(settings)
        _migrate(url)
        # Workers build their own app from the environment: hand them the resolved URL.
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        base = local_base_url(host, sock.getsockname()[1])
        _say(f"walletsvc {__version__}: database {where}, migrations applied; starting on {base}")
        if args.with_worker:
            worker = WorkerChild(concurrency=args.worker_concurrency)
            worker.start()
        announce_when_ready(
            base,
            lambda: [
                f"walletsvc is ready on {base}  (Ctrl-C or SIGTERM stops it)",
                f"  Docs:    {base}/docs",
                f"  Health:  {base}/readyz   OpenAPI: {base}/openapi.json",
                f"  API:     {base}/v1/plans answers without credentials; the rest of /v1 takes a token",
            ],
        )
        return run_uvicorn(sock, workers=args.workers)
    finally:
        if worker is not None:
            worker.stop()  # before this process's exit stops the embedded PostgreSQL the worker uses
        sock.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    url, where = _database(_settings())
    _migrate(url)
    _say(f"migrations applied ({where})")
    return 0


def _scopes(values: list[str]) -> frozenset[Scope]:
    names = [s.strip() for v in values for s in v.split(",") if s.strip()]
    unknown = [n for n in names if n not in {s.value for s in Scope}]
    if unknown:
        raise CliError(f"unknown scope {unknown[0]!r}; choose from {', '.join(s.value for s in Scope)}")
    return frozenset(Scope(n) for n in names)


async def _create_key(url: str, args: argparse.Namespace, scopes: frozenset[Scope]) -> int:
    from walletsvc.services.auth import create_api_key

    db = Database.connect(url, pool_size=1, max_overflow=0)
    try:
        async with unit_of_work(db) as session:
            new = await create_api_key(
                session, scopes=scopes, tenant_id=args.tenant, name=args.name, created_by="cli"
            )
    except DatabaseUnavailable:
        raise  # said by database_errors, with where and what to do
    except WalletError as exc:  # an unknown tenant, a platform-only scope on a tenant key
        raise CliError(exc.detail) from exc
    finally:
        await db.dispose()
    scope_list = ", ".join(sorted(new.record.scopes))
    _say(f"API key {new.record.id} created ({scope_list}; tenant {args.tenant or 'none: platform-wide'})")
    _say("The key is shown once; store it now:")
    print(new.key, flush=True)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    scopes = _scopes(args.scope)  # before anything is started
    url, _ = _database(_settings())
    _migrate(url)
    with database_errors(url):
        return asyncio.run(_create_key(url, args, scopes))


async def _verify(url: str, where: str, *, progress: bool) -> int:
    from walletsvc.services.ledger_verify import LONG_RUN_ROWS, verify_ledger

    db = Database.connect(url, pool_size=1, max_overflow=0)
    try:
        async with db.engine.connect() as conn:
            # On long runs, a line on stderr as each check ends (stdout keeps the report alone).
            results, counts = await verify_ledger(
                conn, progress=_say, long_run_rows=0 if progress else LONG_RUN_ROWS
            )
    finally:
        await db.dispose()
    print(f"ledger verify: {counts['wallets']} wallets, {counts['ledger_entries']} ledger rows ({where})")
    failed = 0
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        print(f"  {mark} {result.check.name}: {result.check.description}")
        for row in result.offending:
            print("         " + json.dumps(row, default=str, sort_keys=True))
        failed += not result.ok
    print("all invariants hold" if not failed else f"{failed} invariant(s) broken")
    return 1 if failed else 0


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    url, where = _database(_settings())
    with database_errors(url):
        return asyncio.run(_verify(url, where, progress=args.progress))


def openapi_document() -> dict[str, Any]:
    from walletsvc.app import create_app

    # The document describes the routes, never this machine's settings: built from the defaults alone, so
    # that a half-configured environment (or a weak JWT_SECRET) neither changes nor breaks it.
    return create_app(Settings.model_construct()).openapi()


def cmd_openapi(args: argparse.Namespace) -> int:
    text = yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot write {args.output} ({exc.strerror or exc}); pass -o PATH or -o - for stdout"
        ) from exc
    _say(f"wrote {args.output}")
    return 0


async def _reconcile(settings: Settings, url: str, older_than: int) -> int:
    from datetime import timedelta

    from walletsvc.gateway_config import build_gateways
    from walletsvc.service_config import document_config
    from walletsvc.services.documents import configure_documents
    from walletsvc.services.reconcile import reconcile

    db = Database.connect(url, pool_size=2, max_overflow=0)
    configure_documents(db.sessionmaker, document_config(settings))  # the invoices of what it credits
    gateways = build_gateways(settings)
    try:
        report = await reconcile(
            db,
            gateways,
            older_than=timedelta(seconds=older_than),
            policy=settings.auto_topup_policy(),
            settings=settings,
        )
    finally:
        await gateways.aclose()
        await db.dispose()
    print(
        f"reconcile: {report.checked} pending top-ups checked: {report.credited} credited, "
        f"{report.failed} failed, {report.still_pending} still pending; {report.refunds_settled} refunds settled; "
        f"{report.auto_topups_resumed} auto top-ups resumed; {report.mandates_updated} mandates updated"
    )
    for error in report.errors:
        print(f"  error: {error}")
    return 1 if report.errors else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level)
    older = args.older_than if args.older_than is not None else settings.reconcile_after_seconds
    url, _ = _database(settings)
    with database_errors(url):
        return asyncio.run(_reconcile(settings, url, older))


async def _close_periods(url: str, enqueue: bool) -> int:
    from walletsvc.services.periods import close_due_periods_report, request_close

    db = Database.connect(url, pool_size=2, max_overflow=0)
    try:
        if enqueue:
            async with unit_of_work(db) as session:
                job_id = await request_close(session)
            print(f"periods close: job {job_id} queued; a worker runs it")
            return 0
        report = await close_due_periods_report(db)
    finally:
        await db.dispose()
    print(
        f"periods close: {report.closed} periods closed; {report.busy} tenants busy and "
        f"{report.failed} failed (see the log), left for the next run"
    )
    return 1 if report.failed else 0


def cmd_periods_close(args: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level)
    url, _ = _database(settings)
    _migrate(url)
    with database_errors(url):
        return asyncio.run(_close_periods(url, args.enqueue))


async def _work(settings: Settings, url: str, concurrency: int) -> int:
    from walletsvc.worker.app import worker

    async with worker(settings, url, concurrency=concurrency) as w:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):  # finish the jobs in hand, then stop
            loop.add_signal_handler(signum, w.pgq.shutdown.set)
        orphaned = parent_gone()
        watch = None
        if orphaned is not None:  # started by `serve --with-worker`: stop with it, even after its SIGKILL
            watch = asyncio.create_task(_stop_when(orphaned, w.pgq.shutdown))
        _say(f"walletsvc worker {__version__}: running jobs and schedules (concurrency {concurrency})")
        await w.pgq.run(
            batch_size=max(1, concurrency // 2),
            max_concurrent_tasks=concurrency,  # pgqueuer: at least twice the batch size
            heartbeat_timeout=timedelta(seconds=settings.worker_heartbeat_timeout_seconds),
            dequeue_timeout=timedelta(seconds=5),
        )
        if watch is not None:
            watch.cancel()
    _say("walletsvc worker stopped")
    return 0


async def _stop_when(gone: Callable[[], bool], shutdown: asyncio.Event) -> None:
    # A parent's exit raises no event in this process: its pid is polled.
    while not gone():  # noqa: ASYNC110
        await asyncio.sleep(1)
    shutdown.set()


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    configure_logging(settings.log_level)
    url, where = _database(settings)
    _migrate(url)
    _say(f"walletsvc worker: database {where}, migrations applied")
    with database_errors(url):
        return asyncio.run(_work(settings, url, args.concurrency))


def cmd_token(args: argparse.Namespace) -> int:
    """A development portal token: HS256, signed with JWT_SECRET, as the platform's issuer would sign it."""
    import jwt

    settings = _settings()
    if settings.jwt_public_key is not None and settings.jwt_public_key.get_secret_value():
        raise CliError(
            "JWT_PUBLIC_KEY is set, so the service accepts only RS256 tokens, which your identity "
            "provider issues; walletsvc token makes HS256 development tokens signed with JWT_SECRET"
        )
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret is not None else ""
    if not secret:
        raise CliError(
            "JWT_SECRET is not set: walletsvc token signs development tokens with it (set the same "
            "value as the server's); RS256 deployments issue their own tokens"
        )
    role = Role(args.role)
    if role is not Role.SUPER_ADMIN and not args.tenant:
        raise CliError(f"--role {role.value} needs --tenant TENANT_ID (only super_admin tokens name none)")
    if args.ttl < 1:
        raise CliError("--ttl must be at least 1 second")
    if args.ttl > settings.jwt_max_lifetime_seconds:
        raise CliError(
            f"--ttl {args.ttl} is longer than JWT_MAX_LIFETIME_SECONDS ({settings.jwt_max_lifetime_seconds}): "
            "the service would refuse the token"
        )
    now = int(time.time())
    claims: dict[str, Any] = {"sub": args.sub or f"dev-{role.value}", "role": role.value, "iat": now}
    claims["exp"] = now + args.ttl
    if args.tenant:
        claims["tenant_id"] = args.tenant
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    token = jwt.encode(claims, secret, algorithm="HS256")
    print(token, flush=True)
    return 0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # an exited child its parent has not reaped yet is a zombie: gone for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def cmd_wait(args: argparse.Namespace) -> int:
    """Wait until the service's /readyz answers 200: exit 0, or one line and exit 1 at the timeout."""
    settings = _settings()
    url = args.url or local_base_url(settings.host, settings.port)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"--url must be an http:// or https:// URL, e.g. {local_base_url('127.0.0.1', 8000)}")
    if parts.path in ("", "/"):
        url = url.rstrip("/") + "/readyz"
    if args.timeout < 0:
        raise CliError("--timeout must be 0 or more seconds")
    start = time.monotonic()
    deadline = start + args.timeout
    last = "nothing tried yet"
    while True:
        if args.pid is not None and not _process_alive(args.pid):
            _say(f"error: the server process {args.pid} ended before {url} answered; see its output and log")
            return 1
        remaining = deadline - time.monotonic()
        status, why = answers(url, timeout=max(0.5, min(2.0, remaining)))
        if status == 200:
            _say(f"ready: {url} answered 200 after {time.monotonic() - start:.1f} s")
            return 0
        last = why or f"HTTP {status}"
        if time.monotonic() >= deadline:
            _say(f"error: {url} did not answer 200 within {args.timeout:g} s (last: {last})")
            return 1
        time.sleep(0.25)  # polling the server's startup


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="walletsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the API")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=_bounded(0, 65535), default=None, help="0: any free port")
    serve.add_argument("--workers", type=_bounded(1, 256), default=1, help="API processes (default 1)")
    serve.add_argument(
        "--with-worker",
        action="store_true",
        help="also run `walletsvc worker` as a child process (one command for the whole service)",
    )
    serve.add_argument(
        "--worker-concurrency", type=_bounded(2, 256), default=4, help="with --with-worker (default 4)"
    )
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply the database migrations").set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key; prints the key as the last line")
    create.add_argument("--scope", action="append", required=True, help="repeat or comma-separate")
    create.add_argument("--tenant", default=None, help="bind the key to this tenant")
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_keys_create)

    ledger = sub.add_parser("ledger", help="the ledger").add_subparsers(dest="ledger_command", required=True)
    verify = ledger.add_parser("verify", help="check every ledger invariant")
    verify.add_argument(
        "--progress",
        action="store_true",
        help="each check's time on stderr as it ends (without it: from 100,000 ledger rows on)",
    )
    verify.set_defaults(func=cmd_ledger_verify)

    rec = sub.add_parser("reconcile", help="settle pending top-ups and refunds with the providers")
    rec.add_argument("--older-than", type=int, default=None, help="seconds (default RECONCILE_AFTER_SECONDS)")
    rec.set_defaults(func=cmd_reconcile)

    periods = sub.add_parser("periods", help="subscription periods").add_subparsers(
        dest="periods_command", required=True
    )
    close = periods.add_parser(
        "close", help="close every ended subscription period now (the worker does it every minute)"
    )
    close.add_argument("--enqueue", action="store_true", help="queue it for the workers instead of here")
    close.set_defaults(func=cmd_periods_close)

    work = sub.add_parser("worker", help="run background jobs and schedules (hold expiry, reconcile, events)")
    work.add_argument(
        "--concurrency", type=_bounded(2, 256), default=4, help="jobs at once, 2 to 256 (default 4)"
    )
    work.set_defaults(func=cmd_worker)

    openapi = sub.add_parser("openapi", help="write the OpenAPI document as YAML")
    openapi.add_argument("--output", "-o", default="openapi.yaml", help="a path, or - for stdout")
    openapi.set_defaults(func=cmd_openapi)

    token = sub.add_parser(
        "token",
        help="print a development portal token (HS256, signed with JWT_SECRET)",
        description="Print an HS256 JWT signed with JWT_SECRET, for development. Deployments that use "
        "JWT_PUBLIC_KEY (RS256) get their tokens from their identity provider.",
    )
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--tenant", default=None, help="the tenant_id claim (required but for super_admin)")
    token.add_argument("--sub", default=None, help="the sub claim (default dev-ROLE)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    token.set_defaults(func=cmd_token)

    wait = sub.add_parser("wait", help="wait until the service answers /readyz with 200")
    wait.add_argument("--url", default=None, help="the service's base URL (default from HOST and PORT)")
    wait.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60); then exit 1")
    wait.add_argument("--pid", type=int, default=None, help="give up at once if this process ends")
    wait.set_defaults(func=cmd_wait)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except CliError as exc:
        _say(f"error: {exc.message}")
        return exc.code
    except KeyboardInterrupt:  # Ctrl-C before the server took over the signal, or during a command
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
