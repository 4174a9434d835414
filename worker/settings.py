"""Every setting, from the environment, through one pydantic-settings class."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.plans import DEFAULT_PLANS, InvalidPlanTable, PlanTable

EMBEDDED_SOCKET = "redis.sock"
EMBEDDED_DB_FILE = "quota.sqlite3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUOTA_", extra="ignore", frozen=True)

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

    @field_validator("plans")
    @classmethod
    def _plans_parse(cls, value: str) -> str:
        if value:
            try:
                PlanTable.from_json(value)
            except InvalidPlanTable as exc:
                raise ValueError(f"QUOTA_PLANS: {exc}") from exc
        return value

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
