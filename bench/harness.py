"""What every benchmark here needs: a fresh database (embedded or on a server), real `walletsvc serve`
processes on it, a lean HTTP client, tokens, and a description of the machine the figures came from."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from sqlalchemy.engine import make_url

from walletsvc.db.engine import normalise_url
from walletsvc.db.migrate import upgrade_to_head

ROOT = Path(__file__).resolve().parents[1]
JWT_SECRET = "bench-" + secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(role: str, tenant_id: str | None = None) -> dict[str, str]:
    claims: dict[str, Any] = {"sub": "bench", "role": role, "exp": int(time.time()) + 7200}
    if tenant_id is not None:
        claims["tenant_id"] = tenant_id
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET)}"}


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class BenchDatabase:
    """A database of its own for one bench run, migrated: on the server of --database-url, or in an
    embedded PostgreSQL that this process starts (and pgserver stops when it exits)."""

    url: str  # SQLAlchemy (asyncpg driver), what DATABASE_URL is set to for the servers
    embedded: bool
    workdir: Path
    _drop: tuple[str, str] | None = None  # (server dsn, database name) to drop at the end

    @property
    def dsn(self) -> str:
        return asyncpg_dsn(self.url)

    async def machine(self) -> dict[str, Any]:
        conn = await asyncpg.connect(self.dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
            settings = {
                name: await conn.fetchval(f"SHOW {name}")
                for name in ("synchronous_commit", "shared_buffers", "max_connections")
            }
        finally:
            await conn.close()
        return machine(postgres=str(version), embedded=self.embedded, postgres_settings=settings)


@contextlib.asynccontextmanager
async def bench_database(server_url: str | None) -> AsyncIterator[BenchDatabase]:
    workdir = Path(tempfile.mkdtemp(prefix="walletsvc-bench-"))
    name = f"walletsvc_bench_{uuid.uuid4().hex[:8]}"
    if server_url:
        server_dsn = asyncpg_dsn(normalise_url(server_url))
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = make_url(normalise_url(server_url)).set(database=name).render_as_string(hide_password=False)
        db = BenchDatabase(url=url, embedded=False, workdir=workdir, _drop=(server_dsn, name))
    else:
        from walletsvc.db.embedded import start_embedded

        # Deleted when this process exits (a bench run writes gigabytes); the servers' logs stay.
        url = await asyncio.to_thread(partial(start_embedded, workdir / "pg", name, throwaway=True))
        db = BenchDatabase(url=url, embedded=True, workdir=workdir)
    await asyncio.to_thread(upgrade_to_head, db.url)
    try:
        yield db
    finally:
        if db._drop is not None:
            conn = await asyncpg.connect(db._drop[0])
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{db._drop[1]}" WITH (FORCE)')
            finally:
                await conn.close()


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args],  # noqa: S607 - the user's git, on PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def machine(**database: Any) -> dict[str, Any]:
    # Dirty by what is changed outside bench/results: a bench run rewrites the kept latest.json and
    # chart there, which made every run after the first say "-dirty" of a clean checkout.
    commit = _git("describe", "--always")
    if commit and _git("status", "--porcelain", "--", ".", ":(exclude)bench/results"):
        commit += "-dirty"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "commit": commit or None,
        **database,
    }


def describe(m: dict[str, Any]) -> str:
    where = "embedded" if m.get("embedded") else "server"
    return f"{m['cores']} cores, {m['cpu']}, PostgreSQL {m.get('postgres')} ({where})"


@dataclass
class Server:
    """One `walletsvc serve` process (with `workers` uvicorn workers) on the bench database."""

    port: int
    process: subprocess.Popen[bytes]
    workers: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def server_env(db: BenchDatabase, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(DATABASE_URL=db.url, JWT_SECRET=JWT_SECRET, LOG_LEVEL="WARNING", **extra)
    return env


async def start_server(db: BenchDatabase, *, workers: int = 1, name: str = "server") -> Server:
    port = free_port()
    log = db.workdir / f"{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once; the wait is async below
            [sys.executable, "-m", "walletsvc.cli", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=db.workdir,  # no stray .env
            env=server_env(db),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers stop with it (killpg)
        )
    server = Server(port=port, process=process, workers=workers, log=log)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(
                    f"walletsvc serve exited with {process.returncode}: {log.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return server
            await asyncio.sleep(0.2)  # polling the server's startup
    server.stop()
    raise SystemExit("the server did not become ready")


def run_cli(db: BenchDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "walletsvc.cli", *args],
        env=server_env(db),
        cwd=db.workdir,
        capture_output=True,
        text=True,
        check=False,
    )


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB, from /proc."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


@dataclass
class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams. httpx costs several times more CPU per
    request than the server's trivial endpoint does, and client and server share this machine's two
    cores: a heavy client would hide the server's own cost and flatter every ratio."""

    host: str
    port: int
    reader: asyncio.StreamReader | None = field(default=None, repr=False)
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        for _ in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(message)
            status_line = await self.reader.readline()
            if status_line:
                break
            # The server closed the connection after its keep-alive timeout (5 s idle): a new one.
            await self.close()
        else:
            raise ConnectionError(f"{self.host}:{self.port} closed the connection twice")
        assert self.reader is not None
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
            self.writer = self.reader = None
