"""One settings object for every process, read from env vars and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.ratelimit import RateText

DEFAULT_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"
MIN_PRODUCTION_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite under data_dir; or postgresql+asyncpg://…
    database_pool_size: int = 5  # PostgreSQL: connections kept open per engine (per process)
    database_max_overflow: int = 5  # PostgreSQL: extra connections under load, closed after
    redis_url: str = "redis://127.0.0.1:6379/0"
    chroma_url: str = "http://127.0.0.1:8001"
    api_port: int = 8000
    workers: int = 1

    jwt_secret: str = DEFAULT_JWT_SECRET
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    cors_origins: list[str] = Field(default_factory=list)

    metrics_token: str = ""  # when set, GET /metrics wants `Authorization: Bearer <token>`
    # Rate limits, "<count>/<period>" (10/minute, 5/15minutes, 100/hour): that many at
    # once, then one every period/count. Per client IP, per email (and IP) or per user.
    rate_limit_login_ip: RateText = "30/minute"
    rate_limit_login_email_ip: RateText = "10/15minutes"  # one account, from one address
    rate_limit_login_email: RateText = "100/15minutes"  # one account, from all addresses
    rate_limit_register_ip: RateText = "20/hour"
    rate_limit_uploads_user: RateText = "100/hour"  # POST /api/materials, /url, /text
    rate_limit_chat_user: RateText = "30/minute"  # chat messages (each one is an LLM call)

    gemini_api_key: str = ""
    gemini_base_url: str = ""  # empty: Google's endpoint; tests point it at a local fake
    gemini_model: str = "gemini-2.5-flash"
    gemini_embedding_model: str = "gemini-embedding-001"
    openai_base_url: str = ""  # OpenAI-compatible: Ollama, vLLM, LM Studio, OpenAI
    openai_api_key: str = ""
    openai_model: str = ""
    openai_embedding_model: str = ""
    llm_provider: Literal["auto", "gemini", "openai", "offline"] = "auto"
    embedding_provider: Literal["auto", "gemini", "openai", "offline"] = "auto"
    provider_timeout_seconds: float = 60.0

    assemblyai_api_key: str = ""
    assemblyai_base_url: str = "https://api.assemblyai.com"
    assemblyai_poll_seconds: float = 3.0

    max_upload_bytes: int = 200 * 1024 * 1024
    max_fetch_bytes: int = 500 * 1024 * 1024
    fetch_timeout_seconds: float = 30.0
    fetch_allowlist: list[str] = Field(
        default_factory=list,
        description="host:port pairs the URL guard lets through even when they resolve to "
        "a private or loopback address. For tests and trusted internal mirrors only.",
    )

    max_text_chars: int = 2_000_000
    chunk_tokens: int = 220
    chunk_overlap_tokens: int = 40
    embedding_dim: int = 768

    job_max_attempts: int = 4
    job_lease_seconds: float = 10.0
    job_timeout_seconds: int = 3600
    worker_max_jobs: int = Field(
        default=10,
        ge=1,
        description="Jobs one worker runs at once (arq's default). Most of a job's time is "
        "spent waiting (Gemini, AssemblyAI, downloads, Chroma); its heaviest CPU step is "
        "bounded separately by WORKER_EXTRACTIONS.",
    )
    worker_extractions: int = Field(
        default=2,
        ge=1,
        description="How many of a worker's jobs may extract a document's text (PDF, DOCX, "
        "PPTX: the heaviest step, in CPU and memory) at once; the others wait for a turn. "
        "More would not go faster: the GIL lets one process use about one core.",
    )
    queue_name: str = "brainwave:queue"

    admin_emails: list[str] = Field(
        default_factory=list,
        description="JSON list of the accounts (by email) allowed to take and list backups.",
    )
    backup_keep: int = Field(default=7, ge=1)  # newest backups kept; older ones are deleted
    backup_hour_utc: int = Field(default=3, ge=0, le=23)  # when the daily backup runs

    @model_validator(mode="after")
    def _refuse_weak_production_secret(self) -> Settings:
        if self.env == "production" and (
            self.jwt_secret == DEFAULT_JWT_SECRET
            or len(self.jwt_secret) < MIN_PRODUCTION_SECRET_LENGTH
        ):
            raise ValueError(
                "JWT_SECRET must be set to a random value of at least "
                f"{MIN_PRODUCTION_SECRET_LENGTH} characters when ENV=production"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL; `postgres://` and `postgresql://` (as RDS, Heroku and
        most hosts print them) mean asyncpg."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'data' / 'brainwave.db').resolve()}"
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def backups_dir(self) -> Path:
        """`exports/backups` under the data root: the compose `exports` volume."""
        return self.data_dir / "exports" / "backups"


@lru_cache
def get_settings() -> Settings:
    return Settings()
