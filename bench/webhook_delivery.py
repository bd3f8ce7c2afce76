"""Webhook delivery figures: N events committed, delivered by real `walletsvc worker` processes to a real
local receiver that verifies every signature; a share of first attempts is answered 500 (retried).

Prints: events delivered, attempts and retries, duplicates the receiver saw (by webhook-id, after a 2xx),
and the time from each event's commit to its first 2xx receipt (median, p90, p99, max), for the events
delivered at the first attempt and for all. Not a test: nothing is asserted about time.

Run: .venv/bin/python bench/webhook_delivery.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
     [--events 500] [--workers 2] [--concurrency 8] [--fail-share 0.1] [--kill-one]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import Fernet
from standardwebhooks import Webhook

from walletsvc.config import Settings
from walletsvc.db.engine import Database, normalise_url, unit_of_work
from walletsvc.db.migrate import upgrade_to_head
from walletsvc.domain.events import EventType, money
from walletsvc.services.events import record_event
from walletsvc.services.webhook_endpoints import SecretBox, WebhookEndpoints

ROOT = Path(__file__).resolve().parents[1]


class Receiver:
    def __init__(self, fail_share: float) -> None:
        self.fail_share = fail_share
        self.lock = threading.Lock()
        self.requests: list[tuple[str, float, int]] = []  # (webhook-id, received at, status answered)
        self.bad_signatures = 0
        self.secret = ""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def _fails_first(self, webhook_id: str) -> bool:
        return int(hashlib.sha256(webhook_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < self.fail_share

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    ok = True
                except Exception:
                    ok = False
                webhook_id = headers.get("webhook-id", "")
                with receiver.lock:
                    seen_before = any(r[0] == webhook_id for r in receiver.requests)
                    status = 200 if ok and (seen_before or not receiver._fails_first(webhook_id)) else 500
                    if not ok:
                        receiver.bad_signatures += 1
                    receiver.requests.append((webhook_id, at, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def start_worker(
    env: dict[str, str], workdir: Path, name: str, concurrency: int
) -> tuple[subprocess.Popen[bytes], Path]:
    err = workdir / f"{name}.err"
    with err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "walletsvc.cli", "worker", "--concurrency", str(concurrency)],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 90
    while "running jobs and schedules" not in err.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {name} did not start:\n{err.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return process, err


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name}: none"
    ms = [v * 1000 for v in values]
    return (
        f"  {name} (n={len(ms)}): median {statistics.median(ms):.0f} ms, p90 {pct(ms, 0.9):.0f} ms, "
        f"p99 {pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    )
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--fail-share", type=float, default=0.1, help="share of events whose first attempt gets a 500"
    )
    parser.add_argument(
        "--kill-one", action="store_true", help="SIGKILL one worker half-way and start another"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="events committed per second (0: as fast as possible)"
    )
    parser.add_argument("--within", type=float, default=120.0)
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("give --database-url (a PostgreSQL server; a fresh database is made on it)")

    server_dsn = args.database_url.replace("postgresql+asyncpg", "postgresql")
    name = f"walletsvc_bench_hooks_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{server_dsn.rsplit('/', 1)[0]}/{name}"
    url = normalise_url(dsn)
    await asyncio.to_thread(upgrade_to_head, url)

    key = Fernet.generate_key().decode()
    settings = Settings(
        _env_file=None, database_url=dsn, webhook_secrets_key=key, webhook_allow_private_urls=True
    )
    receiver = Receiver(args.fail_share)
    db = Database.connect(url, pool_size=4)
    tenant_id = f"bench-{uuid.uuid4().hex[:8]}"
    async with unit_of_work(db) as session:
        created = await WebhookEndpoints(session, settings, SecretBox(key.encode(), source="bench")).create(
            url=receiver.url,
            event_types=[],
            tenant_id=tenant_id,
            description="bench",
            enabled=True,
            created_by="bench",
        )
    receiver.secret = created.secret

    workdir = Path(tempfile.mkdtemp(prefix="walletsvc-bench-hooks-"))
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "JWT_SECRET")
    }
    env.update(
        DATABASE_URL=dsn,
        DATA_DIR=str(workdir / "data"),
        LOG_LEVEL="WARNING",
        WEBHOOK_SECRETS_KEY=key,
        WEBHOOK_ALLOW_PRIVATE_URLS="true",
        WEBHOOK_RETRY_SCHEDULE_SECONDS="1,2,4,8,16,32",
        WORKER_HEARTBEAT_TIMEOUT_SECONDS="3",
        PYTHONPATH=str(ROOT / "src"),
    )
    workers = [start_worker(env, workdir, f"w{i}", args.concurrency) for i in range(args.workers)]
    print(
        f"webhook bench: {args.events} events, {args.workers} worker(s) x concurrency {args.concurrency}, "
        f"{args.fail_share:.0%} of first attempts answered 500, {os.cpu_count()} CPUs",
        flush=True,
    )
    committed: dict[str, float] = {}
    killed = False
    try:
        started = time.monotonic()
        for i in range(args.events):
            async with unit_of_work(db) as session:
                event_id = await record_event(
                    session, EventType.ADJUSTMENT_CREATED, tenant_id, {"amount": money(i + 1, "INR"), "n": i}
                )
            committed[event_id] = time.time()
            if args.rate > 0:
                await asyncio.sleep(max(0.0, started + (i + 1) / args.rate - time.monotonic()))
            if args.kill_one and not killed and i == args.events // 2:
                workers[0][0].send_signal(signal.SIGKILL)
                workers[0][0].wait()
                workers[0] = start_worker(env, workdir, "w-replacement", args.concurrency)
                killed = True
        commit_seconds = time.monotonic() - started
        deadline = time.monotonic() + args.within
        while time.monotonic() < deadline:
            with receiver.lock:
                done = {r[0] for r in receiver.requests if r[2] == 200}
            if len(done & committed.keys()) == len(committed):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let in-flight duplicates, if any, arrive before counting
        async with db.engine.connect() as conn:
            from sqlalchemy import text

            states: Counter[str] = Counter(
                dict(
                    (
                        await conn.execute(
                            text("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
                        )
                    ).all()
                )
            )
            attempts = int(await conn.scalar(text("SELECT count(*) FROM webhook_attempts")) or 0)
    finally:
        for process, _ in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in workers:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        receiver.server.shutdown()

    with receiver.lock:
        requests = list(receiver.requests)
    first_ok: dict[str, float] = {}
    failed_first: set[str] = set()
    duplicates = 0
    for webhook_id, at, status in requests:
        if status == 200:
            if webhook_id in first_ok:
                duplicates += 1
            else:
                first_ok[webhook_id] = at
        elif webhook_id not in first_ok:
            failed_first.add(webhook_id)
    latencies = {i: first_ok[i] - committed[i] for i in committed if i in first_ok}
    print(
        f"  committed {len(committed)} events in {commit_seconds:.1f} s ({len(committed) / commit_seconds:.0f}/s)"
    )
    print(
        f"  delivered: {len(latencies)} of {len(committed)} (deliveries by status: {dict(states)}); "
        f"requests received {len(requests)}, bad signatures {receiver.bad_signatures}"
    )
    print(
        f"  attempts recorded {attempts}; retries {attempts - len(committed)} (events whose first attempt got a 500: {len(failed_first)})"
    )
    print(f"  duplicates seen by the receiver (a 2xx for a webhook-id already answered 2xx): {duplicates}")
    print(
        line(
            "commit -> first 2xx receipt, delivered at the first attempt",
            [v for i, v in latencies.items() if i not in failed_first],
        )
    )
    print(line("commit -> first 2xx receipt, all", list(latencies.values())))
    if latencies:
        span = max(first_ok[i] for i in latencies) - min(committed.values())
        print(
            f"  throughput: the last event delivered {span:.1f} s after the first commit ({len(latencies) / span:.0f}/s)"
        )
    print(
        json.dumps(
            {
                "events": len(committed),
                "delivered": len(latencies),
                "retries": attempts - len(committed),
                "duplicates": duplicates,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
