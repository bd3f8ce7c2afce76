"""The embedded PostgreSQL lives as long as the service that uses it: real `walletsvc serve` processes,
killed and stopped with real signals, on one data folder that the tests share (each leaves no server
running behind it)."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from tests.fixtures.cli_processes import (
    cli_env,
    free_port,
    postgres_processes,
    postmaster_pid,
    registered_users,
    run_cli,
    running,
    serving,
    start_serve,
    stop_postgres,
    wait_until_gone,
)

JWT_SECRET = "lifecycle-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder whose data folder holds a migrated embedded database, with no server running on it."""
    path = tmp_path_factory.mktemp("lifecycle")
    migrated = run_cli(cli_env(path), path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert not wait_until_gone(postgres_processes(path / "data"))  # it was the only user: stopped at exit
    yield path
    stop_postgres(path / "data")  # only if a test failed half-way


@pytest.fixture
def env(workdir: Path) -> dict[str, str]:
    return cli_env(workdir, JWT_SECRET=JWT_SECRET, LOG_LEVEL="WARNING")


def _assert_no_postgres_left(data_dir: Path) -> None:
    left = wait_until_gone(postgres_processes(data_dir))
    assert not left, f"postgres still running for {data_dir}: {[p.pid for p in left]}"
    assert postmaster_pid(data_dir) is None


def test_a_restart_after_sigkill_adopts_the_server_and_the_next_clean_stop_stops_it(
    workdir: Path, env: dict[str, str]
) -> None:
    data_dir = workdir / "data"
    port = free_port()
    with serving(env, workdir, port, name="killed") as first:
        postgres = postmaster_pid(data_dir)
        assert postgres is not None
        first.kill()  # SIGKILL: no atexit hook runs, so its pid stays in pgserver's list
    assert first.process.pid in registered_users(data_dir)
    assert running(psutil.Process(postgres)), "the embedded server outlives a SIGKILL of its user"

    with serving(env, workdir, port, name="restarted") as second:
        assert postmaster_pid(data_dir) == postgres  # adopted, not a second server
        assert registered_users(data_dir) == [second.process.pid]  # the dead one is forgotten
        assert second.stop(signal.SIGTERM) == 128 + signal.SIGTERM, second.output()
    assert "Traceback" not in second.output()
    _assert_no_postgres_left(data_dir)


def test_ctrl_c_stops_the_embedded_server_too(workdir: Path, env: dict[str, str]) -> None:
    data_dir = workdir / "data"
    with serving(env, workdir, free_port(), name="interrupted") as served:
        assert postgres_processes(data_dir)
        assert served.stop(signal.SIGINT) == 130, served.output()
    assert "Traceback" not in served.output()
    _assert_no_postgres_left(data_dir)


def test_a_command_run_beside_the_server_leaves_it_running_and_a_reused_pid_keeps_nothing_alive(
    workdir: Path, env: dict[str, str]
) -> None:
    data_dir = workdir / "data"
    # A pid that pgserver's list still holds but that now belongs to another program (here: sleep).
    stranger = subprocess.Popen(["sleep", "120"])  # noqa: S607 - a plain process to own a pid
    try:
        (data_dir / ".handle_pids.json").write_text(f"[{stranger.pid}]")
        with serving(env, workdir, free_port(), name="shared") as served:
            assert registered_users(data_dir) == [served.process.pid]

            verify = run_cli(env, workdir, "ledger", "verify")
            assert verify.returncode == 0, verify.stdout + verify.stderr
            # The command joined the embedded server and left it; the server still serves.
            assert registered_users(data_dir) == [served.process.pid]
            assert postgres_processes(data_dir)
            served.wait_ready(timeout=10)

            assert served.stop(signal.SIGTERM) == 128 + signal.SIGTERM, served.output()
        _assert_no_postgres_left(data_dir)
    finally:
        stranger.kill()
        stranger.wait(timeout=10)


def test_workers_stop_when_their_supervisor_is_killed_so_a_restart_gets_the_port(
    workdir: Path, env: dict[str, str]
) -> None:
    data_dir = workdir / "data"
    port = free_port()
    with serving(env, workdir, port, "--workers", "2", name="workers") as supervisor:
        workers = psutil.Process(supervisor.process.pid).children(recursive=True)
        assert len([w for w in workers if "spawn_main" in " ".join(w.cmdline())]) == 2
        supervisor.kill()
    assert not wait_until_gone(workers), "orphaned workers would keep the port and serve on"

    restarted = start_serve(env, workdir, port, name="after-workers")
    try:
        restarted.wait_ready()
        assert restarted.stop(signal.SIGTERM) == 128 + signal.SIGTERM, restarted.output()
    finally:
        if restarted.process.poll() is None:
            restarted.kill()
    _assert_no_postgres_left(data_dir)
