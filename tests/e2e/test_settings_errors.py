"""`walletsvc serve` as a real process refuses to start on a weak JWT secret or an unusable public key:
one `error:` line naming the setting and what to do, exit 2, no traceback, never the value itself;
and `.env.example` copied as is is a setup that starts."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli_processes import cli_env, free_port, run_cli

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path  # the cwd too: no stray .env is read


def _one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stderr + result.stdout
    assert result.returncode == 2, f"exit {result.returncode}\n{output[-3000:]}"
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        pytest.param(
            "sh0rt-" + secrets.token_hex(4), "is 14 bytes; an HS256 secret needs at least 32", id="short"
        ),
        pytest.param("change-me", "is a placeholder (it contains 'change-me')", id="placeholder"),
        pytest.param("Q" * 40, "uses only 1 distinct characters", id="repeated"),
    ],
)
def test_serve_refuses_a_weak_jwt_secret_in_one_line(workdir: Path, secret: str, why: str) -> None:
    env = cli_env(workdir, JWT_SECRET=secret)
    result = run_cli(env, workdir, "serve", "--port", str(free_port()), timeout=60)
    line = _one_line_refusal(result)
    assert line.startswith("error: JWT_SECRET: "), line
    assert why in line
    assert "secrets.token_hex(32)" in line
    assert line.endswith("fix it in the environment or .env")
    if secret != "change-me":
        assert secret not in result.stderr + result.stdout
    assert not (workdir / "data").exists()  # refused before the embedded database was started


def test_serve_refuses_a_weak_secret_from_a_dot_env_file(workdir: Path) -> None:
    # A user who copied .env.example and typed the tutorials' placeholder into it.
    text = ENV_EXAMPLE.read_text()
    assert "\nJWT_SECRET=\n" in text
    (workdir / ".env").write_text(text.replace("\nJWT_SECRET=\n", "\nJWT_SECRET=change-me\n"))
    result = run_cli(cli_env(workdir), workdir, "serve", "--port", str(free_port()), timeout=60)
    assert "JWT_SECRET: is a placeholder" in _one_line_refusal(result)


def test_serve_refuses_a_public_key_that_is_not_one(workdir: Path) -> None:
    env = cli_env(workdir, JWT_PUBLIC_KEY="MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")
    line = _one_line_refusal(run_cli(env, workdir, "serve", "--port", str(free_port()), timeout=60))
    assert line.startswith("error: JWT_PUBLIC_KEY: is not a PEM public key"), line
    assert "MIIBIjAN" not in line


def test_env_example_copied_as_is_is_a_valid_setup(workdir: Path) -> None:
    shutil.copy(ENV_EXAMPLE, workdir / ".env")
    # `wait` reads every setting and then asks a port where nothing listens: a settings mistake would
    # be exit 2, this is the "did not answer" of a valid setup.
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli(cli_env(workdir), workdir, "wait", "--url", url, "--timeout", "0", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "did not answer 200" in result.stderr
