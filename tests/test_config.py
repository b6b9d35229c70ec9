import pytest
from pydantic import ValidationError

from shared.config import DEFAULT_JWT_SECRET, Settings


def test_production_refuses_default_or_short_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(env="production", jwt_secret=DEFAULT_JWT_SECRET)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(env="production", jwt_secret="short")
    ok = Settings(env="production", jwt_secret="x" * 40)
    assert ok.env == "production"


def test_database_defaults_to_sqlite_under_data_dir(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/data/brainwave.db"
    assert settings.is_sqlite


@pytest.mark.parametrize(
    "given",
    [
        "postgres://bw:pw@db.example.com:5432/brainwave?ssl=require",
        "postgresql://bw:pw@db.example.com:5432/brainwave?ssl=require",
        "postgresql+asyncpg://bw:pw@db.example.com:5432/brainwave?ssl=require",
    ],
)
def test_postgres_urls_as_hosts_print_them_mean_asyncpg(given: str) -> None:
    settings = Settings(database_url=given)
    expected = "postgresql+asyncpg://bw:pw@db.example.com:5432/brainwave?ssl=require"
    assert settings.resolved_database_url == expected
    assert not settings.is_sqlite


def test_settings_come_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WORKERS", "3")
    monkeypatch.setenv("CORS_ORIGINS", '["https://app.example.com"]')
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.workers == 3
    assert settings.cors_origins == ["https://app.example.com"]
