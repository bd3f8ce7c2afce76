"""Charges per second: the service over HTTP against a trivial endpoint and the raw SQL ceiling.

Run: .venv/bin/python bench/charges.py [--clients 32] [--seconds 8] [--wallets 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import jwt

ROOT = Path(__file__).resolve().parents[1]
JWT_SECRET = "bench-" + secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin_headers() -> dict[str, str]:
    token = jwt.encode({"sub": "bench", "role": "super_admin", "exp": int(time.time()) + 7200}, JWT_SECRET)
    return {"Authorization": f"Bearer {token}"}


async def run_load(
    name: str, clients: int, seconds: float, one: Callable[[int, int], Awaitable[None]]
) -> dict[str, float]:
    """`clients` tasks call `one(client, i)` back to back for `seconds`; latency of each call kept."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await one(n, i)
            latencies.append(time.perf_counter() - started)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    result = {
        "rate": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "count": len(latencies),
    }
    print(
        f"  {name:<34} {result['rate']:>9,.0f}/s   p50 {result['p50_ms']:6.1f} ms   p99 {result['p99_ms']:6.1f} ms"
        f"   ({result['count']:,} in {elapsed:.1f} s)",
        flush=True,
    )
    return result


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams. httpx costs several times more CPU per
    request than the server's trivial endpoint does, and client and server share this machine's two
    cores: a heavy client would hide the server's own cost and flatter every ratio."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def start_server(port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "walletsvc.cli", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=env["BENCH_CWD"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as c:
        for _ in range(300):
            try:
                if (await c.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the server did not become ready")


async def seed(dsn: str, tenants: list[str], balance: int) -> None:
    """10,000 tenants through the service's own code would take minutes over HTTP; open them in
    bulk with the same rows the service writes (tenant, wallet, a funding adjustment)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO tenants (id, name, country, currency) VALUES ($1, 'bench', 'USA', 'USD')",
                [(t,) for t in tenants],
            )
            await conn.executemany(
                "INSERT INTO wallets (tenant_id, currency, balance, ledger_seq) VALUES ($1, 'USD', $2, 1)",
                [(t, balance) for t in tenants],
            )
            await conn.executemany(
                "INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before,"
                " balance_after, counter_account, reference_type, reference_id, description, actor)"
                " VALUES ($1, 1, 'adjustment', $2, 'USD', 0, $2, 'adjustments', 'adjustment', $3,"
                " 'bench funding', 'user:bench')",
                [(t, balance, f"adj_{t}") for t in tenants],
            )
    finally:
        await conn.close()


RAW_CHARGE = """
WITH w AS (
    UPDATE wallets SET balance = balance - $2, ledger_seq = ledger_seq + 1, updated_at = now()
     WHERE tenant_id = $1 AND balance - reserved >= $2
 RETURNING tenant_id, balance, ledger_seq
), c AS (
    INSERT INTO usage_charges (tenant_id, kind, reference_id, quantity, amount, currency, charged, created_by)
    SELECT tenant_id, 'sms', $3, 1, $2, 'USD', $2, 'bench' FROM w
 RETURNING id
)
INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,
                            counter_account, reference_type, reference_id, description, actor)
SELECT w.tenant_id, w.ledger_seq, 'usage_charge', -$2, 'USD', w.balance + $2, w.balance, 'revenue:usage',
       'usage_charge', c.id::text, 'sms', 'bench'
  FROM w, c
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="walletsvc-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(
        JWT_SECRET=JWT_SECRET, DATA_DIR=str(workdir / "pg"), LOG_LEVEL="WARNING", BENCH_CWD=str(workdir)
    )
    dsn_for_sql: str
    database_name = f"walletsvc_bench_{uuid.uuid4().hex[:8]}"
    admin_conn = None
    if args.database_url:
        admin_conn = await asyncpg.connect(args.database_url.replace("postgresql+asyncpg", "postgresql"))
        await admin_conn.execute(f'CREATE DATABASE "{database_name}"')
        base_dsn = args.database_url.replace("postgresql+asyncpg", "postgresql").rsplit("/", 1)[0]
        dsn_for_sql = f"{base_dsn}/{database_name}"
        env["DATABASE_URL"] = dsn_for_sql
        where = "DATABASE_URL"
    else:
        where = "embedded PostgreSQL"
        dsn_for_sql = ""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, env, args.workers)
    try:
        await wait_ready(base)
        if not dsn_for_sql:
            socket_dir = workdir / "pg"
            dsn_for_sql = f"postgresql://postgres@/walletsvc?host={socket_dir}"
        hot = f"bench-hot-{uuid.uuid4().hex[:6]}"
        many = [f"bench-{i:05d}-{uuid.uuid4().hex[:4]}" for i in range(args.wallets)]
        await seed(dsn_for_sql, [hot, *many], balance=10**12)

        async with httpx.AsyncClient(base_url=base, timeout=30) as setup:
            created = await setup.post(
                "/v1/admin/api-keys",
                json={"scopes": ["usage:write"], "name": "bench"},
                headers=admin_headers(),
            )
        key = {"Authorization": f"Bearer {created.json()['key']}"}
        run = uuid.uuid4().hex[:6]
        connections = [RawHTTP("127.0.0.1", port) for _ in range(args.clients)]

        async def trivial(n: int, i: int) -> None:
            status, _ = await connections[n].request("GET", "/healthz")
            assert status == 200

        def usage_on(
            phase: str, tenant_of: Callable[[int, int], str]
        ) -> Callable[[int, int], Awaitable[None]]:
            async def one(n: int, i: int) -> None:
                body = {
                    "tenant_id": tenant_of(n, i),
                    "kind": "sms",
                    "reference_id": f"{run}-{phase}-{n}-{i}",
                    "quantity": 1,
                }
                status, answer = await connections[n].request(
                    "POST", "/v1/usage", json.dumps(body).encode(), key
                )
                assert status == 201, answer

            return one

        try:
            print(
                f"walletsvc bench: {args.clients} concurrent clients, {args.seconds:.0f} s each, "
                f"{args.workers} server worker(s), {where}, {os.cpu_count()} CPUs",
                flush=True,
            )
            await run_load("warm-up", args.clients, 2, usage_on("warm", lambda n, i: hot))
            base_rate = await run_load("GET /healthz (trivial endpoint)", args.clients, args.seconds, trivial)
            hot_rate = await run_load(
                "POST /v1/usage, one hot wallet",
                args.clients,
                args.seconds,
                usage_on("hot", lambda n, i: hot),
            )
            spread = await run_load(
                f"POST /v1/usage, {args.wallets:,} wallets",
                args.clients,
                args.seconds,
                usage_on("spread", lambda n, i: many[(n * 7919 + i) % len(many)]),
            )
        finally:
            for connection in connections:
                await connection.close()

        pool = await asyncpg.create_pool(dsn_for_sql, min_size=args.clients, max_size=args.clients)
        try:

            async def raw_on(tenant_of: Callable[[int, int], str]) -> Callable[[int, int], Awaitable[None]]:
                async def one(n: int, i: int) -> None:
                    async with pool.acquire() as conn:
                        await conn.execute(RAW_CHARGE, tenant_of(n, i), 2, f"raw-{run}-{n}-{i}")

                return one

            raw_hot = await run_load(
                "raw SQL, one hot wallet", args.clients, args.seconds, await raw_on(lambda n, i: hot)
            )
            raw_spread = await run_load(
                f"raw SQL, {args.wallets:,} wallets",
                args.clients,
                args.seconds,
                await raw_on(lambda n, i: many[(n * 7919 + i) % len(many)]),
            )
        finally:
            await pool.close()

        print("ratios:", flush=True)
        print(f"  hot wallet over HTTP / trivial endpoint   {hot_rate['rate'] / base_rate['rate']:.2f}")
        print(f"  spread over HTTP / trivial endpoint       {spread['rate'] / base_rate['rate']:.2f}")
        print(f"  hot wallet over HTTP / raw SQL hot        {hot_rate['rate'] / raw_hot['rate']:.2f}")
        print(f"  spread over HTTP / raw SQL spread         {spread['rate'] / raw_spread['rate']:.2f}")
        verify = subprocess.run(
            [sys.executable, "-m", "walletsvc.cli", "ledger", "verify"],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        print(
            f"ledger verify after the run: {verify.stdout.strip().splitlines()[-1] if verify.stdout else verify.stderr}"
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        if admin_conn is not None:
            await admin_conn.execute(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
            await admin_conn.close()


if __name__ == "__main__":
    asyncio.run(main())
