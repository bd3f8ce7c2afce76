"""The `walletsvc` command as a user meets it, run as a real process: a setup mistake is one line on stderr
saying what is wrong and what to do, with exit 2 for every usage or configuration error; never a
traceback. And the two commands a first session uses: `token` and `wait`."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg
import jwt
import pytest
from sqlalchemy.engine import make_url

from tests.fixtures.cli_processes import cli_env, free_port, readyz_stand_in, run_cli
from walletsvc.config import Settings
from walletsvc.db.engine import normalise_url
from walletsvc.domain.access import Role
from walletsvc.service_config import auth_config
from walletsvc.services.auth import Authenticator

SECRET = "cli-test-secret-" + uuid.uuid4().hex


def _refused(result: subprocess.CompletedProcess[str], *fragments: str, code: int = 2) -> str:
    """Assert the command refused in one short message; return it."""
    err = result.stderr
    assert result.returncode == code, f"exit {result.returncode}\n{err}\n{result.stdout[-2000:]}"
    assert "Traceback" not in err + result.stdout, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3, err
    assert "XDG_RUNTIME_DIR" not in err
    message = lines[-1]
    assert message.startswith("error: "), err
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path  # the cwd too, so no stray .env is read


@pytest.fixture(scope="module")
def missing_database_url(database_url: str) -> str:
    """The test server's URL, naming a database that does not exist on it."""
    return (
        make_url(normalise_url(database_url))
        .set(database=f"missing_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )


@pytest.mark.parametrize(
    "command", [["migrate"], ["ledger", "verify"], ["keys", "create", "--scope", "admin"]]
)
def test_a_database_url_naming_a_missing_database_is_one_line(
    command: list[str], missing_database_url: str, workdir: Path
) -> None:
    name = make_url(missing_database_url).database
    result = run_cli(cli_env(workdir, DATABASE_URL=missing_database_url), workdir, *command)
    _refused(result, f'no database "{name}"', f"createdb {name}")


def test_serve_on_a_missing_database_says_so_before_any_banner(
    missing_database_url: str, workdir: Path
) -> None:
    env = cli_env(workdir, DATABASE_URL=missing_database_url, JWT_SECRET=SECRET)
    result = run_cli(env, workdir, "serve", "--port", str(free_port()), timeout=60)
    _refused(result, "no database")
    assert "ready" not in result.stderr
    assert "http://" not in result.stderr


@pytest.mark.parametrize("command", [["migrate"], ["ledger", "verify"]])
def test_a_closed_port_is_one_line(command: list[str], workdir: Path) -> None:
    port = free_port()  # nothing listens there
    env = cli_env(workdir, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/walletsvc")
    _refused(run_cli(env, workdir, *command), f"127.0.0.1:{port}", "refused", "DATABASE_URL")


@pytest.mark.parametrize(
    ("url", "fragment", "command"),
    [
        ("not-a-url", "not a database URL", ["migrate"]),
        ("not-a-url", "not a database URL", ["ledger", "verify"]),
        ("not-a-url", "not a database URL", ["serve", "--port", "0"]),
        ("mysql://user:hunter2@db.example/wallets", "needs PostgreSQL", ["migrate"]),
        ("postgresql+pg8000://user:hunter2@db.example/wallets", "asyncpg", ["ledger", "verify"]),
    ],
)
def test_a_database_url_walletsvc_cannot_use_is_one_line_that_never_echoes_it(
    url: str, fragment: str, command: list[str], workdir: Path
) -> None:
    result = run_cli(cli_env(workdir, DATABASE_URL=url, JWT_SECRET=SECRET), workdir, *command)
    message = _refused(result, fragment, "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    assert "hunter2" not in result.stderr + result.stdout
    assert url not in message


async def test_ledger_verify_on_an_unmigrated_database_says_to_migrate(
    database_url: str, workdir: Path
) -> None:
    url = make_url(normalise_url(database_url))
    name = f"walletsvc_empty_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        empty = url.set(database=name).render_as_string(hide_password=False)
        result = await asyncio.to_thread(
            run_cli, cli_env(workdir, DATABASE_URL=empty), workdir, "ledger", "verify"
        )
        _refused(result, "no walletsvc tables", "walletsvc migrate")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_openapi_into_a_missing_folder_is_one_line(workdir: Path) -> None:
    result = run_cli(cli_env(workdir), workdir, "openapi", "-o", "/no/such/dir/x.yaml")
    _refused(result, "/no/such/dir/x.yaml", "No such file or directory")


def test_keys_create_refuses_a_bad_scope_and_an_unknown_tenant_with_the_same_code(
    database_url: str, workdir: Path
) -> None:
    env = cli_env(workdir, DATABASE_URL=database_url)
    _refused(run_cli(env, workdir, "keys", "create", "--scope", "usage:wrte"), "'usage:wrte'", "usage:write")
    unknown = run_cli(env, workdir, "keys", "create", "--scope", "wallet:read", "--tenant", "no-such-tenant")
    _refused(unknown, "not found")
    assert "wsk_" not in unknown.stdout
    # argparse's own usage errors use the same code.
    assert run_cli(env, workdir, "keys", "create").returncode == 2


def test_the_embedded_mode_prints_no_runtime_dir_warning(workdir: Path) -> None:
    # No DATABASE_URL and no XDG_RUNTIME_DIR: pgserver is imported and starts a server in DATA_DIR.
    result = run_cli(
        cli_env(workdir), workdir, "keys", "create", "--scope", "wallet:read", "--tenant", "nobody"
    )
    _refused(result, "not found")
    assert "Warning" not in result.stderr


def test_serve_on_a_port_in_use_is_one_line_and_touches_no_database(workdir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The database is not even looked at: this one does not exist.
        env = cli_env(workdir, DATABASE_URL="postgresql://postgres@127.0.0.1:1/none", JWT_SECRET=SECRET)
        result = run_cli(env, workdir, "serve", "--host", "127.0.0.1", "--port", str(port), timeout=60)
    message = _refused(result)
    assert message == f"error: port {port} is in use; pass --port or stop the other process"
    assert result.stderr.strip() == message


def test_bad_settings_are_named_as_the_variable_to_fix(workdir: Path) -> None:
    _refused(run_cli(cli_env(workdir, PORT="eighty"), workdir, "wait", "--timeout", "0"), "PORT:")


# --- walletsvc token ---------------------------------------------------------------------------------


def test_token_prints_a_token_the_service_accepts(workdir: Path) -> None:
    env = cli_env(workdir, JWT_SECRET=SECRET, JWT_AUDIENCE="walletsvc-dev")
    before = int(time.time())
    result = run_cli(
        env, workdir, "token", "--role", "owner", "--tenant", "acme", "--sub", "u-1", "--ttl", "600"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    token = result.stdout.strip()
    assert result.stdout == token + "\n"  # the token alone, for $(...)

    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="walletsvc-dev")
    assert claims["sub"] == "u-1"
    assert claims["role"] == "owner"
    assert claims["tenant_id"] == "acme"
    assert claims["exp"] - claims["iat"] == 600
    assert before <= claims["iat"] <= int(time.time())
    settings = Settings(_env_file=None, jwt_secret=SECRET, jwt_audience="walletsvc-dev")
    principal = Authenticator(auth_config(settings)).known(token)
    assert principal is not None
    assert (principal.role, principal.tenant_id, principal.subject) == (Role.OWNER, "acme", "u-1")


def test_token_for_an_admin_needs_no_tenant(workdir: Path) -> None:
    result = run_cli(cli_env(workdir, JWT_SECRET=SECRET), workdir, "token", "--role", "super_admin")
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["role"] == "super_admin"
    assert "tenant_id" not in claims
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize(
    ("settings", "args", "fragments"),
    [
        ({}, ["--role", "super_admin"], ["JWT_SECRET is not set", "RS256"]),
        (
            {"JWT_SECRET": SECRET, "JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"},
            ["--role", "owner"],
            ["RS256"],
        ),
        ({"JWT_SECRET": SECRET}, ["--role", "owner"], ["--tenant"]),
        ({"JWT_SECRET": SECRET}, ["--role", "member", "--tenant", "acme", "--ttl", "0"], ["--ttl"]),
        ({"JWT_SECRET": SECRET}, ["--role", "root"], []),
    ],
)
def test_token_refuses_what_it_cannot_sign(
    settings: dict[str, str], args: list[str], fragments: list[str], workdir: Path
) -> None:
    result = run_cli(cli_env(workdir, **settings), workdir, "token", *args)
    if fragments:
        _refused(result, *fragments)
    else:  # argparse's refusal of an unknown role: usage and a line, the same code
        assert result.returncode == 2
        assert "invalid choice: 'root'" in result.stderr
    assert result.stdout == ""


# --- walletsvc wait ----------------------------------------------------------------------------------


def test_wait_returns_once_readyz_answers_200(workdir: Path) -> None:
    with readyz_stand_in([503, 503, 200]) as base_url:
        result = run_cli(cli_env(workdir), workdir, "wait", "--url", base_url, "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == result.stderr.strip().splitlines()[0]
    assert f"{base_url}/readyz answered 200" in result.stderr


def test_wait_gives_up_at_the_timeout_with_the_last_answer(workdir: Path) -> None:
    with readyz_stand_in([503]) as base_url:
        result = run_cli(cli_env(workdir), workdir, "wait", "--url", base_url, "--timeout", "1")
    _refused(result, f"{base_url}/readyz did not answer 200 within 1 s", "HTTP 503", code=1)

    closed = f"http://127.0.0.1:{free_port()}"
    result = run_cli(cli_env(workdir), workdir, "wait", "--url", closed, "--timeout", "1")
    _refused(result, "within 1 s", "connection refused", code=1)


def test_wait_stops_at_once_when_the_server_process_ended(workdir: Path) -> None:
    ended = subprocess.Popen(["true"])  # noqa: S607 - a process that is gone at once
    ended.wait(timeout=10)
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_cli(
        cli_env(workdir), workdir, "wait", "--url", closed, "--timeout", "600", "--pid", str(ended.pid)
    )
    _refused(result, f"process {ended.pid} ended", code=1)  # not the timeout's message


def test_wait_refuses_a_url_that_is_not_http(workdir: Path) -> None:
    _refused(run_cli(cli_env(workdir), workdir, "wait", "--url", "localhost:8000"), "http://")
