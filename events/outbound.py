"""CloudEvents 1.0 (structured JSON) built from domain events."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain import events as domain_events

EVENT_TYPES: dict[type[Any], str] = {
    domain_events.ChangeAccepted: "mail.quota.change.accepted",
    domain_events.QuotaChanged: "mail.quota.changed",
    domain_events.ChangeRejected: "mail.quota.change.rejected",
    domain_events.ChangeExpired: "mail.quota.change.expired",
    domain_events.ChangeCancelled: "mail.quota.change.cancelled",
    domain_events.RefundRequired: "mail.quota.refund.required",
}


@dataclass(frozen=True)
class OutboundEvent:
    """One stream entry: its fields are `type`, `subject` and `event`."""

    id: str
    type: str
    subject: str
    body: str  # the whole CloudEvent as JSON

    def stream_fields(self) -> dict[str, str]:
        return {"type": self.type, "subject": self.subject, "event": self.body}


def _wire(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def event_data(event: domain_events.DomainEvent) -> dict[str, object]:
    # Domain events are flat (strings, numbers, datetimes): their fields as they are,
    # without dataclasses.asdict's deep copy of each value.
    data = {f.name: _wire(getattr(event, f.name)) for f in dataclasses.fields(event)}
    if isinstance(event, domain_events.RefundRequired):
        data.pop("service_mail_id")  # the entry's subject, not part of the data
    return data


def subject_of(event: domain_events.DomainEvent) -> str:
    # A refund for an order never seen has no Service Mail: the order is its subject.
    service_mail_id = getattr(event, "service_mail_id", None)
    return service_mail_id or f"order:{event.order_id}"


def to_cloudevent(event: domain_events.DomainEvent, source: str, time: datetime) -> OutboundEvent:
    event_id = str(uuid.uuid4())
    event_type = EVENT_TYPES[type(event)]
    subject = subject_of(event)
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": time.isoformat(),
        "datacontenttype": "application/json",
        "data": event_data(event),
    }
    return OutboundEvent(event_id, event_type, subject, json.dumps(body, separators=(",", ":")))
