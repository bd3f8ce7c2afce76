"""An acknowledged charge survives a crash: real `walletsvc serve` processes on the embedded PostgreSQL,
SIGKILLed (and, in the second case, the PostgreSQL itself crashed: SIGQUIT to the postmaster, which is
what `pg_ctl stop -m immediate` sends) right after a 201, then started again. Every charge that was
answered 201 is found, with its ledger row, and `walletsvc ledger verify` is green.

Charges are sent several at a time, so the kill also lands on requests in flight: those may or may not
have been charged (the client never heard), and either way the ledger must hold."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import bearer, make_token
from tests.fixtures.cli_processes import (
    Serving,
    cli_env,
    free_port,
    postgres_processes,
    postmaster_pid,
    run_cli,
    start_serve,
    stop_postgres,
    wait_until_gone,
)
from tests.fixtures.constants import JWT_SECRET

IN_FLIGHT = 6  # charges sent together each round
ROUNDS = 3
CALL_PRICE = 15  # a 60 s call at the USD defaults: 5 a minute and a 10 cent connection fee
FUNDS = 1_000_000


@dataclass
class Service:
    """A tenant with a usage key on a served walletsvc that the test kills and starts again."""

    workdir: Path
    env: dict[str, str]
    served: Serving | None = None
    tenant_id: str = field(default_factory=lambda: f"crash-{uuid.uuid4().hex[:10]}")
    key: dict[str, str] = field(default_factory=dict)
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def base_url(self) -> str:
        assert self.served is not None
        return self.served.base_url

    def start(self) -> None:
        self.starts += 1
        self.served = start_serve(self.env, self.workdir, free_port(), name=f"serve-{self.starts}")
        self.served.wait_ready()

    def kill(self) -> None:
        assert self.served is not None
        self.served.process.send_signal(signal.SIGKILL)
        self.served.process.wait(timeout=60)

    def crash_postgres(self) -> None:
        """SIGQUIT to the postmaster: `pg_ctl stop -m immediate`, no checkpoint, recovery from WAL on the
        next start."""
        pid = postmaster_pid(self.data_dir)
        assert pid is not None
        processes = postgres_processes(self.data_dir)
        os.kill(pid, signal.SIGQUIT)
        assert not wait_until_gone(processes)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(workdir=tmp_path, env=cli_env(tmp_path, JWT_SECRET=JWT_SECRET, LOG_LEVEL="WARNING"))
    svc.start()
    admin = bearer(make_token(role="super_admin"))
    with httpx.Client(base_url=svc.base_url, timeout=30) as http:
        created = http.post(
            "/v1/admin/tenants",
            json={"id": svc.tenant_id, "name": "Crash Test Ltd", "country": "USA", "currency": "USD"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        funded = http.post(
            f"/v1/admin/tenants/{svc.tenant_id}/adjustments",
            json={"amount": FUNDS, "reason": "funds for the crash test"},
            headers=admin,
        )
        assert funded.status_code == 201, funded.text
        key = http.post(
            "/v1/admin/api-keys", json={"scopes": ["usage:write"], "tenant_id": svc.tenant_id}, headers=admin
        )
        assert key.status_code == 201, key.text
        svc.key = bearer(key.json()["key"])
    try:
        yield svc
    finally:
        if svc.served is not None and svc.served.process.poll() is None:
            svc.served.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(Exception):
                svc.served.process.wait(timeout=60)
        stop_postgres(svc.data_dir)


def _call(reference_id: str) -> dict[str, Any]:
    return {"kind": "call", "reference_id": reference_id, "duration_seconds": 60}


async def _charge_then_crash(service: Service, crash: Any) -> dict[str, dict[str, Any]]:
    """Send IN_FLIGHT charges at once; on the first 201, `crash()` at once. Answers the acknowledged
    charges by reference id (the first and any other that got its 201 before the crash)."""
    acknowledged: dict[str, dict[str, Any]] = {}
    round_id = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as http:

        async def post(n: int) -> tuple[str, httpx.Response | None]:
            reference = f"{round_id}-{n}"
            try:
                return reference, await http.post("/v1/usage", json=_call(reference), headers=service.key)
            except httpx.TransportError:
                return reference, None  # cut off by the crash: never acknowledged

        pending = {asyncio.ensure_future(post(n)) for n in range(IN_FLIGHT)}
        crashed = False
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                reference, response = task.result()
                if response is not None and response.status_code == 201:
                    acknowledged[reference] = response.json()
                    if not crashed:
                        crash()
                        crashed = True
    assert acknowledged, "no charge was answered 201 before the crash"
    return acknowledged


def _assert_found(service: Service, acknowledged: dict[str, dict[str, Any]]) -> None:
    owner = bearer(make_token(role="owner", tenant_id=service.tenant_id))
    with httpx.Client(base_url=service.base_url, timeout=30) as http:
        for reference, charge in acknowledged.items():
            rows = http.get("/v1/transactions", params={"reference_id": str(charge["id"])}, headers=owner)
            assert rows.status_code == 200, rows.text
            ledger = [r for r in rows.json()["data"] if r["type"] == "usage_charge"]
            assert [r["amount"]["amount"] for r in ledger] == [-CALL_PRICE], (reference, rows.json())
            # The telephony retry after the crash answers the same charge and charges nothing again.
            retry = http.post("/v1/usage", json=_call(reference), headers=service.key)
            assert retry.status_code == 200, retry.text
            assert retry.json()["id"] == charge["id"]
            assert retry.json()["replayed"] is True


def _assert_ledger_verify_green(service: Service) -> None:
    verified = run_cli(service.env, service.workdir, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-1] == "all invariants hold"


async def test_a_charge_answered_201_survives_a_sigkill_of_the_server(service: Service) -> None:
    acknowledged: dict[str, dict[str, Any]] = {}
    for _ in range(ROUNDS):
        acknowledged |= await _charge_then_crash(service, service.kill)
        service.start()
    assert len(acknowledged) >= ROUNDS
    _assert_found(service, acknowledged)
    _assert_ledger_verify_green(service)


async def test_a_charge_answered_201_survives_a_crash_of_postgresql(service: Service) -> None:
    acknowledged: dict[str, dict[str, Any]] = {}
    for _ in range(2):
        acknowledged |= await _charge_then_crash(service, service.crash_postgres)
        service.kill()  # its connections are gone with the database; started again below
        assert postmaster_pid(service.data_dir) is None  # crashed, not running: the start recovers it
        service.start()
    _assert_found(service, acknowledged)
    _assert_ledger_verify_green(service)
