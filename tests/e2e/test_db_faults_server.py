"""The real thing: `walletsvc serve` on a database of its own, its backends ended over and over while a
mixed workload runs against it over HTTP. No 500, a 503 only as DATABASE_UNAVAILABLE with Retry-After,
reads always answered, every charge and credit made once, `walletsvc ledger verify` green."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.fixtures.auth import bearer, make_token, owner_headers
from tests.fixtures.constants import JWT_SECRET
from tests.fixtures.db_faults import (
    Storm,
    asyncpg_dsn,
    charges_and_ledger_rows,
    ledger_rows_described,
    terminator,
)
from walletsvc.db.engine import normalise_url

STARTUP_TIMEOUT = 90.0


@dataclass
class Served:
    base_url: str
    database_url: str
    env: dict[str, str]
    workdir: Path
    log: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own CLI, with fixed arguments
            [sys.executable, "-m", "walletsvc.cli", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(port: int, env: dict[str, str], workdir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own CLI, with fixed arguments
            [sys.executable, "-m", "walletsvc.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    """A fresh database on the test server (migrated by `serve` itself) and one server process on it."""
    name = f"walletsvc_dbf_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(normalise_url(database_url)).set(database=name).render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DATABASE_URL"}}
    env.update(
        DATABASE_URL=url,
        DATA_DIR=str(tmp_path / "data"),
        JWT_SECRET=JWT_SECRET,
        LOG_LEVEL="WARNING",
        DB_POOL_SIZE="6",
        DB_MAX_OVERFLOW="6",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    log = tmp_path / "server.log"
    process = _spawn(port, env, tmp_path, log)
    srv = Served(base_url=f"http://127.0.0.1:{port}", database_url=url, env=env, workdir=tmp_path, log=log)
    try:
        await _wait_until_ready(srv, process)
        yield srv
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 60)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 30)
        admin = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _wait_until_ready(server: Served, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = server.log.read_text(errors="replace")[-4000:]
                pytest.fail(f"walletsvc serve exited with {process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{server.base_url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)  # polling for startup, not waiting out a race
    pytest.fail(f"walletsvc serve not ready after {STARTUP_TIMEOUT}s")


async def test_a_served_process_never_answers_500_while_its_backends_are_ended(served: Served) -> None:
    rounds = 12
    admin = bearer(make_token(role="super_admin", sub="dbf-admin"))
    tenant_id = f"dbf-{uuid.uuid4().hex[:10]}"
    async with (
        httpx.AsyncClient(base_url=served.base_url, timeout=60) as http,
        terminator(served.database_url) as killer,
    ):
        opened = await http.post(
            "/v1/admin/tenants",
            json={"id": tenant_id, "name": "Faults Ltd", "country": "USA", "currency": "USD"},
            headers=admin,
        )
        assert opened.status_code == 201, opened.text
        funded = await http.post(
            f"/v1/admin/tenants/{tenant_id}/adjustments",
            json={"amount": 1_000_000, "reason": "funding"},
            headers=admin,
        )
        assert funded.status_code == 201, funded.text
        created = await http.post(
            "/v1/admin/api-keys", json={"scopes": ["usage:write"], "tenant_id": tenant_id}, headers=admin
        )
        assert created.status_code == 201, created.text
        storm = Storm(
            http,
            tenant_id,
            usage_headers=bearer(created.json()["key"]),
            owner_headers=owner_headers(tenant_id),
            admin_headers=admin,
        )
        for _ in range(rounds):
            await storm.round(60, killer)

        assert storm.statuses[500] == 0, storm.statuses
        assert set(storm.statuses) <= {200, 201, 503}, storm.statuses
        for response in storm.unavailable:
            assert response.json()["code"] == "DATABASE_UNAVAILABLE"
            assert int(response.headers["retry-after"]) >= 1
        assert [r.status_code for r in storm.reads] == [200] * len(storm.reads)
        assert {r.status_code for r in await storm.retry_unavailable()} <= {200, 201}
        charged = await charges_and_ledger_rows(killer.conn, tenant_id, storm.charged)
        assert charged == dict.fromkeys(storm.charged, 2)
        assert await ledger_rows_described(killer.conn, storm.credits) == dict.fromkeys(storm.credits, 1)
        assert killer.terminations == rounds
        assert killer.backends_ended >= rounds

    verify = await asyncio.to_thread(served.cli, "ledger", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.splitlines()[-1] == "all invariants hold"
    log = served.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    print(  # the figures for the report (pytest -s shows them)
        f"\nserved storm: {sum(storm.statuses.values())} requests, {killer.terminations} terminations "
        f"({killer.backends_ended} backends ended), statuses {dict(storm.statuses)}, "
        f"requests run again {log.count('running the request again')}, "
        f"charge batches written again {log.count('charge batch lost its connection')}"
    )
