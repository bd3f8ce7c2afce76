"""The `walletsvc` command: serve, migrate, keys create, ledger verify, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

import yaml

from walletsvc.config import Settings, get_settings
from walletsvc.db.engine import Database, resolve_database_url, unit_of_work
from walletsvc.db.migrate import upgrade_to_head
from walletsvc.domain.access import Scope
from walletsvc.domain.errors import WalletError
from walletsvc.logs import configure_logging


def _say(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr, flush=True)


def _database(settings: Settings) -> tuple[str, str]:
    """The URL to use, and how to describe it (never printing a password)."""
    url = resolve_database_url(settings)
    if settings.database_url is None or not settings.database_url.get_secret_value():
        return url, f"embedded PostgreSQL in {settings.data_dir.resolve()}"
    return url, "DATABASE_URL"


def cmd_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    url, where = _database(settings)
    upgrade_to_head(url)
    # Workers (and reloads) build their own app from the environment: hand them the resolved URL.
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    host, port = args.host or settings.host, args.port or settings.port
    base = f"http://{host}:{port}"
    _say(
        f"walletsvc {__import__('walletsvc').__version__}: database {where}, migrations applied",
        f"API:  {base}/v1",
        f"Docs: {base}/docs  (OpenAPI: {base}/openapi.json)",
    )
    import uvicorn

    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler the process would
    # then die without running atexit hooks, and pgserver's hook is what stops the embedded PostgreSQL.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    uvicorn.run(
        "walletsvc.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    url, where = _database(settings)
    upgrade_to_head(url)
    _say(f"migrations applied ({where})")
    return 0


def _scopes(values: list[str]) -> frozenset[Scope]:
    names = [s.strip() for v in values for s in v.split(",") if s.strip()]
    try:
        return frozenset(Scope(n) for n in names)
    except ValueError as exc:
        raise SystemExit(f"unknown scope; choose from {', '.join(s.value for s in Scope)}") from exc


async def _create_key(settings: Settings, args: argparse.Namespace) -> int:
    from walletsvc.services.auth import create_api_key

    url, _ = _database(settings)
    db = Database.connect(url, pool_size=1, max_overflow=0)
    try:
        async with unit_of_work(db) as session:
            new = await create_api_key(
                session, scopes=_scopes(args.scope), tenant_id=args.tenant, name=args.name, created_by="cli"
            )
    except WalletError as exc:
        _say(f"error: {exc.detail}")
        return 2
    finally:
        await db.dispose()
    scope_list = ", ".join(sorted(new.record.scopes))
    _say(f"API key {new.record.id} created ({scope_list}; tenant {args.tenant or 'none: platform-wide'})")
    _say("The key is shown once; store it now:")
    print(new.key, flush=True)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    settings = get_settings()
    url, _ = _database(settings)
    upgrade_to_head(url)
    return asyncio.run(_create_key(settings, args))


async def _verify(settings: Settings) -> int:
    from walletsvc.services.ledger_verify import verify_ledger

    url, where = _database(settings)
    db = Database.connect(url, pool_size=1, max_overflow=0)
    try:
        async with db.engine.connect() as conn:
            results, counts = await verify_ledger(conn)
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
    return asyncio.run(_verify(get_settings()))


def openapi_document() -> dict[str, Any]:
    from walletsvc.app import create_app

    return create_app(Settings()).openapi()


def cmd_openapi(args: argparse.Namespace) -> int:
    text = yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        _say(f"wrote {args.output}")
    return 0


async def _reconcile(settings: Settings, older_than: int) -> int:
    from datetime import timedelta

    from walletsvc.services.gateways import build_gateways
    from walletsvc.services.reconcile import reconcile

    url, _ = _database(settings)
    db = Database.connect(url, pool_size=2, max_overflow=0)
    gateways = build_gateways(settings)
    try:
        report = await reconcile(db, gateways, older_than=timedelta(seconds=older_than))
    finally:
        await gateways.aclose()
        await db.dispose()
    print(
        f"reconcile: {report.checked} pending top-ups checked: {report.credited} credited, "
        f"{report.failed} failed, {report.still_pending} still pending; {report.refunds_settled} refunds settled"
    )
    for error in report.errors:
        print(f"  error: {error}")
    return 1 if report.errors else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    older = args.older_than if args.older_than is not None else settings.reconcile_after_seconds
    return asyncio.run(_reconcile(settings, older))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="walletsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the API")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply the database migrations").set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key; prints the key as the last line")
    create.add_argument("--scope", action="append", required=True, help="repeat or comma-separate")
    create.add_argument("--tenant", default=None, help="bind the key to this tenant")
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_keys_create)

    ledger = sub.add_parser("ledger", help="the ledger").add_subparsers(dest="ledger_command", required=True)
    ledger.add_parser("verify", help="check every ledger invariant").set_defaults(func=cmd_ledger_verify)

    rec = sub.add_parser("reconcile", help="settle pending top-ups and refunds with the providers")
    rec.add_argument("--older-than", type=int, default=None, help="seconds (default RECONCILE_AFTER_SECONDS)")
    rec.set_defaults(func=cmd_reconcile)

    openapi = sub.add_parser("openapi", help="write the OpenAPI document as YAML")
    openapi.add_argument("--output", "-o", default="openapi.yaml")
    openapi.set_defaults(func=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
