"""`walletsvc serve --with-worker` (what `bash scripts/serve.sh` runs): one command brings up the API and
the worker on the embedded PostgreSQL; the worker does its jobs, stops with the server, and does not
outlive a server killed with SIGKILL."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.fixtures.auth import bearer, make_token
from tests.fixtures.constants import JWT_SECRET
from tests.fixtures.server import ServedApp, serve_walletsvc
from tests.fixtures.tenants import new_tenant_id

WORKER_LINE = "running jobs and schedules"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _wait_for(condition: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)  # polling another process's progress
    raise AssertionError(f"not within {timeout:.0f} s: {condition}")


def _worker_pid(api: ServedApp) -> int:
    _wait_for("the worker says it runs", lambda: WORKER_LINE in api.log_tail())
    workers = [
        pid for pid in _children(api.process.pid) if "worker" in Path(f"/proc/{pid}/cmdline").read_text()
    ]
    assert len(workers) == 1, workers
    return workers[0]


def _event_dispatched(api: ServedApp, admin: dict[str, str], tenant_id: str) -> None:
    def dispatched() -> bool:
        page = httpx.get(f"{api.base_url}/v1/admin/events", params={"tenant_id": tenant_id}, headers=admin)
        page.raise_for_status()
        events = page.json()["data"]
        return bool(events) and all(e["delivery"] != "pending" for e in events)

    _wait_for("the worker dispatched the tenant's events", dispatched)


def _open_tenant_with_credit(api: ServedApp, admin: dict[str, str]) -> str:
    tenant_id = new_tenant_id()
    body = {"id": tenant_id, "name": "Serve", "country": "IND", "currency": "INR"}
    assert httpx.post(f"{api.base_url}/v1/admin/tenants", json=body, headers=admin).status_code == 201
    credit = {"amount": 50_000, "reason": "welcome credit"}
    url = f"{api.base_url}/v1/admin/tenants/{tenant_id}/adjustments"
    assert httpx.post(url, json=credit, headers=admin).status_code == 201
    return tenant_id


def test_serve_with_worker_runs_jobs_and_stops_both(tmp_path: Path) -> None:
    admin = bearer(make_token(role="super_admin"))
    with serve_walletsvc(tmp_path, {"JWT_SECRET": JWT_SECRET}, "--with-worker") as api:
        worker = _worker_pid(api)
        tenant_id = _open_tenant_with_credit(api, admin)
        _event_dispatched(api, admin, tenant_id)  # adjustment.created, dispatched by the worker
        api.process.send_signal(signal.SIGTERM)
        assert api.process.wait(timeout=90) in (0, 128 + signal.SIGTERM), api.log_tail()
    log = api.log_tail()
    assert "walletsvc worker stopped" in log
    assert "Traceback" not in log, log
    assert not _alive(worker)
    # The worker stopped first; the server was the embedded PostgreSQL's last user, and stopped it.
    assert not (tmp_path / "data" / "postmaster.pid").exists()


def test_a_worker_does_not_outlive_a_killed_server(tmp_path: Path) -> None:
    with serve_walletsvc(tmp_path, {"JWT_SECRET": JWT_SECRET}, "--with-worker") as api:
        worker = _worker_pid(api)
        api.process.send_signal(signal.SIGKILL)
        api.process.wait(timeout=30)
        _wait_for("the orphaned worker stopped", lambda: not _alive(worker))
        assert "walletsvc worker stopped" in api.log_tail()
