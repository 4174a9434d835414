"""Every setting, from the environment, through one pydantic-settings class."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.plans import DEFAULT_PLANS, InvalidPlanTable, PlanTable
from worker.api.tokens import InvalidTokens, TokenSet, parse_tokens

EMBEDDED_SOCKET = "redis.sock"
EMBEDDED_DB_FILE = "quota.sqlite3"


class Settings(BaseSettings):
    # Errors never repeat the input: it may hold a token or a password.
    model_config = SettingsConfigDict(
        env_prefix="QUOTA_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    data_dir: Path = Field(default=Path("./var"), description="the embedded default's files")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; an SQLite file under QUOTA_DATA_DIR if unset"
    )
    broker_url: SecretStr | None = Field(
        default=None, description="Celery broker; the embedded Redis if unset"
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis holding the event stream; the embedded Redis if unset"
    )
    events_stream: str = Field(default="quota.events", min_length=1)
    event_source: str = Field(default="quota-worker", min_length=1)
    payment_timeout_seconds: float = Field(default=86400, gt=0)
    sweep_interval_seconds: float = Field(default=60, gt=0)
    provisioning_grace_seconds: float = Field(
        default=300,
        ge=0,
        description="how long a request for an unknown Service Mail waits for its provisioning",
    )
    expiry_grace_seconds: float = Field(
        default=300, ge=0, description="how long after expires_at a payment in time may arrive"
    )
    redis_atomic_pop: bool = Field(
        default=True,
        description="on a Redis broker, pop and record each message in one Lua script "
        "(off: kombu's own BRPOP transport, for a Redis that refuses scripts)",
    )
    batch_max: int = Field(
        default=10,
        ge=1,
        le=100,
        description="the most hot-path messages handled in one database transaction "
        "(1: one transaction per message); a batch is what already waits (on Redis one pop "
        "takes up to that many), never held back on a timer",
    )
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="the largest message body accepted; a larger one is a dead letter",
    )
    plans: str = Field(
        default="", description="the plan table as JSON; the contract's table if empty"
    )
    # Keeping it running for years (CONTRACT.md): nothing grows without bound.
    stream_retention_seconds: float = Field(
        default=7 * 86400, gt=0, description="age after which stream entries are trimmed"
    )
    outbox_retention_seconds: float = Field(
        default=30 * 86400,
        gt=0,
        description="how long published events stay in the database for `events republish`",
    )
    dedup_retention_seconds: float = Field(
        default=30 * 86400, gt=0, description="how long processed-message ids are kept"
    )

    # Asking the service (CONTRACT.md): `quota-worker api`.
    api_host: str = Field(default="127.0.0.1", min_length=1, description="where the API listens")
    api_port: int = Field(default=8080, ge=1, le=65535)
    api_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="comma-separated name:scope:token entries (scope read or operate); "
        "unset: every /v1 call is refused",
    )

    @model_validator(mode="after")
    def _outbox_outlives_the_stream(self) -> Settings:
        if self.outbox_retention_seconds < self.stream_retention_seconds:
            raise ValueError(
                f"QUOTA_OUTBOX_RETENTION_SECONDS ({self.outbox_retention_seconds:g}) is shorter "
                f"than QUOTA_STREAM_RETENTION_SECONDS ({self.stream_retention_seconds:g}): an "
                "event still in the stream could not be published again; raise the first"
            )
        return self

    @field_validator("plans")
    @classmethod
    def _plans_parse(cls, value: str) -> str:
        if value:
            try:
                PlanTable.from_json(value)
            except InvalidPlanTable as exc:
                raise ValueError(f"QUOTA_PLANS: {exc}") from exc
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens_parse(cls, value: SecretStr) -> SecretStr:
        try:
            parse_tokens(value.get_secret_value())
        except InvalidTokens as exc:
            raise ValueError(f"QUOTA_API_TOKENS: {exc}") from exc
        return value

    @cached_property
    def api_token_set(self) -> TokenSet:
        return parse_tokens(self.api_tokens.get_secret_value())

    @cached_property
    def plan_table(self) -> PlanTable:
        return PlanTable.from_json(self.plans) if self.plans else PlanTable.parse(DEFAULT_PLANS)

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @property
    def embedded_socket(self) -> Path:
        return self.data_path / EMBEDDED_SOCKET

    def database(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_path / EMBEDDED_DB_FILE}"

    def broker(self) -> str:
        if self.broker_url is not None:
            return self.broker_url.get_secret_value()
        return f"redis+socket://{self.embedded_socket}"

    def redis(self) -> str:
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        return f"unix://{self.embedded_socket}"
