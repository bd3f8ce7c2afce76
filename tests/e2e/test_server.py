"""The real thing: `walletsvc serve` on the embedded PostgreSQL, used over HTTP and from the CLI."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

JWT_SECRET = "e2e-secret-" + uuid.uuid4().hex
STARTUP_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _token(role: str, tenant_id: str | None = None) -> dict[str, str]:
    claims: dict[str, object] = {"sub": f"e2e-{role}", "role": role, "exp": int(time.time()) + 3600}
    if tenant_id is not None:
        claims["tenant_id"] = tenant_id
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


@dataclass
class Server:
    base_url: str
    env: dict[str, str]
    workdir: Path
    log: Path
    process: subprocess.Popen[bytes]

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

    @property
    def postmaster_pid_file(self) -> Path:
        return Path(self.env["DATA_DIR"]) / "postmaster.pid"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"walletsvc serve exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError as exc:
            last_error = repr(exc)
        time.sleep(0.2)  # polling for startup, not waiting out a race
    pytest.fail(f"walletsvc serve not ready after {STARTUP_TIMEOUT}s ({last_error}):\n{server.log_tail()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("e2e")  # the cwd too, so no stray .env is read
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DATABASE_URL"}}
    env.update(
        DATA_DIR=str(workdir / "data"),
        JWT_SECRET=JWT_SECRET,
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "walletsvc.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    srv = Server(base_url=f"http://127.0.0.1:{port}", env=env, workdir=workdir, log=log, process=process)
    try:
        _wait_until_ready(srv)
        yield srv
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        _stop_orphaned_postgres(srv.postmaster_pid_file)


def _stop_orphaned_postgres(pid_file: Path) -> None:
    """If a failing run left the embedded PostgreSQL behind, stop it (it is this test's own child)."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().splitlines()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def test_served_api_handles_a_tenant_from_creation_to_csv_export(server: Server) -> None:
    tenant_id = f"e2e-{uuid.uuid4().hex[:10]}"
    admin = _token("super_admin")
    owner = _token("owner", tenant_id)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.get("/healthz").json() == {"status": "ok"}

        created = http.post(
            "/v1/admin/tenants",
            json={"id": tenant_id, "name": "End To End Pvt Ltd", "country": "IND", "currency": "INR"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"]

        credit = http.post(
            f"/v1/admin/tenants/{tenant_id}/adjustments",
            json={"amount": 50_000, "reason": "opening credit"},
            headers={**admin, "Idempotency-Key": f"e2e-credit-{tenant_id}"},
        )
        assert credit.status_code == 201, credit.text
        retry = http.post(
            f"/v1/admin/tenants/{tenant_id}/adjustments",
            json={"amount": 50_000, "reason": "opening credit"},
            headers={**admin, "Idempotency-Key": f"e2e-credit-{tenant_id}"},
        )
        assert retry.headers.get("idempotent-replayed") == "true"
        debit = http.post(
            f"/v1/admin/tenants/{tenant_id}/adjustments",
            json={"amount": -1_250, "reason": '=HYPERLINK("x") correction'},
            headers=admin,
        )
        assert debit.status_code == 201, debit.text

        wallet = http.get("/v1/wallet", headers=owner)
        assert wallet.status_code == 200, wallet.text
        assert wallet.json()["balance"] == {"amount": 48_750, "currency": "INR"}
        assert wallet.json()["available"] == {"amount": 48_750, "currency": "INR"}

        history = http.get("/v1/transactions", headers=owner)
        assert history.status_code == 200
        rows = history.json()["data"]
        assert [r["amount"]["amount"] for r in rows] == [-1_250, 50_000]
        assert rows[0]["balance_before"]["amount"] == rows[1]["balance_after"]["amount"]

        export = http.get("/v1/transactions/export.csv", headers=owner)
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(export.text)))
        assert [int(r["amount"]) for r in table] == [-1_250, 50_000]
        assert [r["id"] for r in table] == [r["id"] for r in rows]
        assert table[0]["description"].startswith("'=")  # no formula injection into spreadsheets

        assert http.get("/v1/wallet").status_code == 401
        docs = http.get("/docs")
        assert docs.status_code == 200
        assert "http://" not in docs.text
        assert "https://" not in docs.text
        assert "walletsvc_http_requests_total" in http.get("/metrics").text


def test_cli_creates_api_keys_that_the_running_server_accepts(server: Server) -> None:
    tenant_id = f"e2e-{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        created = http.post(
            "/v1/admin/tenants",
            json={"id": tenant_id, "name": "Keys Ltd", "country": "DEU", "currency": "EUR"},
            headers=_token("super_admin"),
        )
        assert created.status_code == 201, created.text

        usage = server.cli("keys", "create", "--scope", "usage:write", "--tenant", tenant_id)
        assert usage.returncode == 0, usage.stderr
        usage_key = usage.stdout.strip().splitlines()[-1]
        assert usage_key.startswith("wsk_")
        # Authenticated (not 401), but usage:write may not read the wallet.
        response = http.get("/v1/wallet", headers={"Authorization": f"Bearer {usage_key}"})
        assert response.status_code == 403, response.text

        reader = server.cli(
            "keys", "create", "--scope", "wallet:read", "--tenant", tenant_id, "--name", "e2e"
        )
        assert reader.returncode == 0, reader.stderr
        reader_key = reader.stdout.strip().splitlines()[-1]
        assert reader_key != usage_key
        response = http.get("/v1/wallet", headers={"Authorization": f"Bearer {reader_key}"})
        assert response.status_code == 200, response.text
        assert response.json()["tenant_id"] == tenant_id
        assert response.json()["currency"] == "EUR"

        tampered = reader_key[:-1] + ("a" if not reader_key.endswith("a") else "b")
        response = http.get("/v1/wallet", headers={"Authorization": f"Bearer {tampered}"})
        assert response.status_code == 401

    unknown = server.cli(
        "keys", "create", "--scope", "wallet:read", "--tenant", f"missing-{uuid.uuid4().hex[:6]}"
    )
    assert unknown.returncode != 0
    assert "not found" in unknown.stderr
    assert "wsk_" not in unknown.stdout


def test_cli_ledger_verify_passes_on_the_served_database(server: Server) -> None:
    tenant_id = f"e2e-{uuid.uuid4().hex[:10]}"
    admin = _token("super_admin")
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert (
            http.post(
                "/v1/admin/tenants",
                json={"id": tenant_id, "name": "Verify Ltd", "country": "USA", "currency": "USD"},
                headers=admin,
            ).status_code
            == 201
        )
        for amount in (1_000, -400, 250):
            response = http.post(
                f"/v1/admin/tenants/{tenant_id}/adjustments",
                json={"amount": amount, "reason": "verify me"},
                headers=admin,
            )
            assert response.status_code == 201, response.text

    result = server.cli("ledger", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ledger verify:")
    checks = [line for line in lines if line.startswith("  ok ")]
    assert len(checks) >= 2, result.stdout
    assert not [line for line in lines if "FAIL" in line]
    assert lines[-1] == "all invariants hold"


def test_server_stops_cleanly_on_sigterm_and_stops_its_embedded_postgres(server: Server) -> None:
    # Runs last in this module (pytest keeps file order): the fixture's teardown then has nothing to do.
    assert server.process.poll() is None
    assert server.postmaster_pid_file.exists()  # the embedded server is up, in DATA_DIR
    server.process.send_signal(signal.SIGTERM)
    # 143 = 128 + SIGTERM, set by an exit that ran its cleanup; -15 would be a death by the signal itself.
    assert server.process.wait(timeout=60) in (0, 128 + signal.SIGTERM), server.log_tail()
    log = server.log_tail()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log, log
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url}/healthz", timeout=2)
    # The last process using the embedded PostgreSQL has gone, so it was stopped, not orphaned.
    assert not server.postmaster_pid_file.exists()
