"""Where the key that encrypts webhook signing secrets comes from: the setting, else (embedded database
only) a key file in DATA_DIR that `serve` and the worker it starts share, else nowhere (503)."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from walletsvc.config import Settings
from walletsvc.db.embedded import is_embedded_url
from walletsvc.service_config import webhook_secret_box
from walletsvc.services.webhook_endpoints import KEY_FILE_NAME


def _settings(data_dir: Path, **values: str) -> Settings:
    return Settings.model_validate({"data_dir": data_dir, **values})


def test_the_embedded_server_and_the_url_serve_hands_its_worker_share_one_key_file(tmp_path: Path) -> None:
    alone = webhook_secret_box(_settings(tmp_path))
    embedded_url = f"postgresql+asyncpg://postgres@/walletsvc?host={tmp_path}"
    worker = webhook_secret_box(_settings(tmp_path, database_url=embedded_url))
    assert alone is not None
    assert worker is not None
    assert worker.open(alone.seal("whsec_abc")) == "whsec_abc"
    assert (tmp_path / KEY_FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_a_real_server_without_the_setting_has_no_key(tmp_path: Path) -> None:
    url = "postgresql://walletsvc@db.internal:5432/walletsvc"
    assert webhook_secret_box(_settings(tmp_path, database_url=url)) is None
    assert not (tmp_path / KEY_FILE_NAME).exists()
    key = Fernet.generate_key().decode()
    assert webhook_secret_box(_settings(tmp_path, database_url=url, webhook_secrets_key=key)) is not None


def test_only_a_socket_in_the_data_dir_is_the_embedded_server(tmp_path: Path) -> None:
    assert is_embedded_url(f"postgresql+asyncpg://postgres@/walletsvc?host={tmp_path}", tmp_path)
    assert not is_embedded_url("postgresql+asyncpg://postgres@/walletsvc?host=/var/run/postgresql", tmp_path)
    assert not is_embedded_url("postgresql://postgres@127.0.0.1:5432/walletsvc", tmp_path)
