"""The schema: SQLAlchemy Core tables, migrated by Alembic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

from domain.model import ChangeState


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

ID = String(64)
# The partial indexes' predicate: the one state whose rows the hot path and sweep look up.
_AWAITING = text(f"state = '{ChangeState.AWAITING_PAYMENT.value}'")
_RECEIVED = text(f"state = '{ChangeState.RECEIVED.value}'")

service_mails = Table(
    "service_mails",
    metadata,
    Column("id", ID, primary_key=True),
    Column("account_id", ID, nullable=False),
    Column("plan", ID, nullable=False),
    Column("address_limit", Integer, nullable=False),
    Column("ksuite_id", ID, nullable=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Why the limit is outside its plan's bounds, as a provisioning left it (status).
    Column("outside_plan", String(200), nullable=True),
    Index(
        "ix_service_mails_outside_plan",
        "id",
        postgresql_where=text("outside_plan IS NOT NULL"),
        sqlite_where=text("outside_plan IS NOT NULL"),
    ),
)

addresses = Table(
    "addresses",
    metadata,
    Column("service_mail_id", ID, primary_key=True),
    Column("address", String(254), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# The last snapshot of a Service Mail's addresses applied (`mail.addresses_snapshot`): one
# not newer changes nothing. Kept by id, whether the Service Mail is provisioned yet or not,
# as its addresses are.
address_snapshots = Table(
    "address_snapshots",
    metadata,
    Column("service_mail_id", ID, primary_key=True),
    Column("taken_at", UTCDateTime, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

quota_changes = Table(
    "quota_changes",
    metadata,
    Column("request_id", ID, primary_key=True),
    Column("order_id", ID, nullable=False, unique=True),
    Column("account_id", ID, nullable=False),
    Column("service_mail_id", ID, nullable=False, index=True),
    Column("expected_address_limit", Integer, nullable=False),
    Column("new_address_limit", Integer, nullable=False),
    Column("amount_due", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("state", String(20), nullable=False),
    Column("reason", String(40), nullable=True),
    Column("detail", Text, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("payment_id", ID, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # The sweep reads only awaiting changes, oldest deadline first.
    Index(
        "ix_quota_changes_awaiting_expiry",
        "expires_at",
        postgresql_where=_AWAITING,
        sqlite_where=_AWAITING,
    ),
    # The sweep reads the changes waiting for their Service Mail, end of grace first.
    Index(
        "ix_quota_changes_received_grace",
        "expires_at",
        postgresql_where=_RECEIVED,
        sqlite_where=_RECEIVED,
    ),
    # Backstop of the one-change-awaiting-payment rule, whatever the code does.
    Index(
        "uq_quota_changes_one_awaiting",
        "service_mail_id",
        unique=True,
        postgresql_where=_AWAITING,
        sqlite_where=_AWAITING,
    ),
)

transitions = Table(
    "change_transitions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("request_id", ID, ForeignKey("quota_changes.request_id"), nullable=False, index=True),
    Column("from_state", String(20), nullable=False),
    Column("to_state", String(20), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("message_id", String(255), nullable=True),
    Column("at", UTCDateTime, nullable=False),
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", ID, primary_key=True),
    Column("order_id", ID, nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("paid_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("refund_reason", String(40), nullable=True),
    Index(
        "ix_payments_pending",
        "received_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

# A cancel that came before its request: honoured when the request arrives.
early_cancels = Table(
    "early_cancels",
    metadata,
    Column("order_id", ID, primary_key=True),
    Column("reason", String(200), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

# One row per limit change: the audit behind every `version`.
limit_history = Table(
    "limit_history",
    metadata,
    Column("service_mail_id", ID, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("request_id", ID, nullable=False),
    Column("previous_address_limit", Integer, nullable=False),
    Column("address_limit", Integer, nullable=False),
    Column("addresses_in_use", Integer, nullable=False),
    Column("plan", ID, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("subject", String(80), nullable=False),
    Column("body", Text, nullable=False),
    Column("order_id", ID, nullable=True, index=True),
    # Pruned by age, and read by age for `events republish`.
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Index(
        "ix_outbox_unsent",
        "id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
)

processed_messages = Table(
    "processed_messages",
    metadata,
    Column("message_id", String(255), primary_key=True),
    Column("task", String(64), nullable=False),
    Column("outcome", String(40), nullable=False),
    # The order the message concerned: a change's audit trail lists its messages.
    Column("order_id", ID, nullable=True, index=True),
    Column("processed_at", UTCDateTime, nullable=False, index=True),  # pruned by age
)

# What `quota-worker run` saw every SAMPLE_SECONDS: the history behind `status --plot`.
samples = Table(
    "samples",
    metadata,
    Column("at", UTCDateTime, primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", Float, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("message_id", String(255), nullable=True, index=True),
    Column("task", String(255), nullable=True),
    # At most the body's first 64 KiB (worker.adapters.deliveries.StoredBody),
    # with its full size and hash.
    Column("body", Text, nullable=False),
    Column("body_size", BigInteger, nullable=True),
    Column("body_sha256", String(64), nullable=True),
    Column("content_type", String(255), nullable=True),
    Column("error", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False, server_default="stored"),
    # What an operator did with it: replayed (as which message) or discarded (why).
    Column("resolution", Text, nullable=True),
    Column("replayed_as", String(255), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    # The pruner reads discarded dead letters by age (worker/adapters/prune.py).
    Index(
        "ix_dead_letters_discarded",
        "resolved_at",
        postgresql_where=text("status = 'discarded'"),
        sqlite_where=text("status = 'discarded'"),
    ),
)
