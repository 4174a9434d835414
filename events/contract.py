"""The contract as documents, generated from the models so they cannot drift.

- `json_schemas()`: a JSON Schema (2020-12) per inbound message and per event's
  `data`, plus the CloudEvents envelope.
- `asyncapi()`: an AsyncAPI 3.0 document: the three queues and the event
  stream as channels, every message with its payload, headers and examples.

`quota-worker contract schemas|asyncapi` writes them; `contract/` in the
repository holds the committed copies and a test fails when they are stale.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from domain import events as domain_events
from events import outbound
from events.inbound import INBOUND, QUEUES, Message
from events.schemas import EVENT_DATA, CloudEvent, EventData

DEFAULT_STREAM = "quota.events"
SCHEMA_BASE = "https://quota-worker.invalid/contract/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

# One valid payload per inbound message: shown to integrators, validated by the tests.
INBOUND_EXAMPLES: dict[str, dict[str, Any]] = {
    "quota.request_change": {
        "schema_version": 1, "request_id": "req-7f3a", "order_id": "ord-20261124-0042",
        "account_id": "acc-1009", "service_mail_id": "sm-example-ch",
        "expected_address_limit": 10, "new_address_limit": 20, "amount_due": 1500,
        "currency": "CHF", "requested_at": "2026-11-24T10:00:00+01:00",
    },
    "quota.cancel_change": {
        "schema_version": 1, "order_id": "ord-20261124-0042", "reason": "customer left the cart",
    },
    "quota.payment_confirmed": {
        "schema_version": 1, "payment_id": "pay-88121", "order_id": "ord-20261124-0042",
        "amount": 1500, "currency": "CHF", "paid_at": "2026-11-24T10:02:13+01:00",
    },
    "mail.service_provisioned": {
        "schema_version": 1, "service_mail_id": "sm-example-ch", "account_id": "acc-1009",
        "plan": "premium", "address_limit": 10, "ksuite_id": None,
    },
    "mail.address_created": {
        "schema_version": 1, "service_mail_id": "sm-example-ch", "address": "anna@example.ch",
    },
    "mail.address_deleted": {
        "schema_version": 1, "service_mail_id": "sm-example-ch", "address": "anna@example.ch",
    },
}  # fmt: skip

_T0 = datetime(2026, 11, 24, 9, 2, 14, tzinfo=UTC)
_IDS = {"request_id": "req-7f3a", "order_id": "ord-20261124-0042"}
# One domain event per type, turned into a CloudEvent by the worker's own code.
_EVENT_EXAMPLES: list[domain_events.DomainEvent] = [
    domain_events.ChangeAccepted(
        **_IDS, account_id="acc-1009", service_mail_id="sm-example-ch", address_limit=10,
        new_address_limit=20, amount_due=1500, currency="CHF",
        expires_at=_T0 + timedelta(days=1),
    ),
    domain_events.QuotaChanged(
        **_IDS, account_id="acc-1009", service_mail_id="sm-example-ch",
        previous_address_limit=10, address_limit=20, addresses_in_use=7, plan="premium",
        version=3, applied_at=_T0,
    ),
    domain_events.ChangeRejected(
        **_IDS, service_mail_id="sm-example-ch", reason="addresses_in_use",
        detail="The limit cannot go below the 7 addresses in use: delete addresses first.",
    ),
    domain_events.ChangeExpired(**_IDS, service_mail_id="sm-example-ch"),
    domain_events.ChangeCancelled(
        **_IDS, service_mail_id="sm-example-ch", reason="customer left the cart"
    ),
    domain_events.RefundRequired(
        payment_id="pay-88121", order_id="ord-20261124-0042", amount=1500, currency="CHF",
        reason="change_expired", service_mail_id="sm-example-ch",
    ),
]  # fmt: skip


def event_examples(source: str = "quota-worker") -> dict[str, dict[str, Any]]:
    """A CloudEvent per type, built by `events.outbound` exactly as the relay publishes it."""
    examples = {}
    for n, event in enumerate(_EVENT_EXAMPLES, start=1):
        built = outbound.to_cloudevent(event, source, _T0)
        body = json.loads(built.body)
        body["id"] = f"0b6f1c2e-5d1a-4e8b-9c3f-00000000000{n}"  # stable in the documents
        examples[built.type] = body
    return examples


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_"))


def _schema(model: type[BaseModel], schema_id: str, title: str) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"$schema": DRAFT, "$id": SCHEMA_BASE + schema_id, **schema, "title": title}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Relative file name -> JSON Schema, for every inbound message and event `data`."""
    out: dict[str, dict[str, Any]] = {}
    for name, (_queue, model) in INBOUND.items():
        path = f"inbound/{name}.json"
        schema = _schema(model, path, name)
        schema["examples"] = [INBOUND_EXAMPLES[name]]
        out[path] = schema
    examples = event_examples()
    for event_type, data_model in EVENT_DATA.items():
        path = f"events/{event_type}.data.json"
        schema = _schema(data_model, path, f"{event_type} data")
        schema["examples"] = [examples[event_type]["data"]]
        out[path] = schema
    out["events/cloudevent.json"] = _schema(CloudEvent, "events/cloudevent.json", "CloudEvent")
    return out


# --- AsyncAPI ---------------------------------------------------------------------------

_CHANNEL_IDS = {"quota.orders": "quotaOrders", "quota.payments": "quotaPayments",
                "quota.mail": "quotaMail"}  # fmt: skip
_PRODUCERS = {"quota.orders": "the checkout service", "quota.payments": "the payment service",
              "quota.mail": "the mail platform"}  # fmt: skip

CELERY_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": (
        "Celery task protocol 2 headers. `task` names the message and `id` is a fresh UUID per "
        "send (Celery's task id; redelivery keeps it). Other protocol-2 headers may be present "
        "and are ignored."
    ),
    "required": ["task", "id"],
    "properties": {
        "task": {"type": "string", "description": "The message name."},
        "id": {"type": "string", "format": "uuid", "description": "Celery task id."},
        "lang": {"type": "string", "examples": ["py", "js"]},
    },
}


def _message_id(name: str) -> str:
    return name.replace(".", "_")


def _inbound_message(name: str, queue: str, model: type[Message]) -> dict[str, Any]:
    headers = copy.deepcopy(CELERY_HEADERS)
    headers["properties"]["task"]["const"] = name
    example_id = "3f1c0d9e-9a5b-4b7e-8f10-6c2d54b1a001"
    return {
        "name": name,
        "title": _title(name),
        "summary": (model.__doc__ or "").strip(),
        "description": (
            f"A Celery task message (protocol 2, JSON only) named `{name}` on queue `{queue}`. "
            "The payload below is the task's keyword arguments; the message body is the "
            "JSON array `[[], <payload>, {}]` (no positional arguments). Any other "
            "serializer (pickle, yaml, msgpack) is refused."
        ),
        "contentType": "application/json",
        "headers": headers,
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "examples": [
            {
                "name": "valid",
                "headers": {"task": name, "id": example_id, "lang": "py"},
                "payload": INBOUND_EXAMPLES[name],
            }
        ],
    }


def _event_message(event_type: str, data_model: type[EventData], example: dict[str, Any]) -> Any:
    envelope = {
        "allOf": [
            {"$ref": "#/components/schemas/CloudEvent"},
            {
                "type": "object",
                "properties": {
                    "type": {"const": event_type},
                    "data": {"$ref": f"#/components/schemas/{data_model.__name__}"},
                },
            },
        ]
    }
    return {
        "name": event_type,
        "title": _title(event_type),
        "summary": (data_model.__doc__ or "").strip().split("\n")[0],
        "description": (
            "A stream entry with the fields `type` (this type), `subject` (the Service Mail "
            "id) and `event`: the CloudEvent below as JSON (structured mode)."
        ),
        "contentType": "application/cloudevents+json",
        "payload": envelope,
        "examples": [{"name": "example", "payload": example}],
    }


def _components_schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [model for _queue, model in INBOUND.values()]
    models += [*EVENT_DATA.values(), CloudEvent]
    _, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    return dict(sorted(top["$defs"].items()))


def package_version() -> str:
    try:
        return version("quota-worker")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0.0.0"


def asyncapi(stream: str = DEFAULT_STREAM) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the contract, as a plain dict."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for queue in QUEUES:
        channel_id = _CHANNEL_IDS[queue]
        names = [name for name, (q, _m) in INBOUND.items() if q == queue]
        channels[channel_id] = {
            "address": queue,
            "title": f"Queue {queue}",
            "description": f"Celery queue fed by {_PRODUCERS[queue]}.",
            "messages": {
                _message_id(n): {"$ref": f"#/components/messages/{_message_id(n)}"} for n in names
            },
            "bindings": {"amqp": {"is": "queue", "queue": {"name": queue, "durable": True}}},
        }
        for name in names:
            messages[_message_id(name)] = _inbound_message(name, queue, INBOUND[name][1])
            operations["receive_" + _message_id(name)] = {
                "action": "receive",
                "title": f"Consume {name}",
                "summary": f"The worker consumes `{name}` from `{queue}`.",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{_message_id(name)}"}],
            }
    examples = event_examples()
    channels["quotaEvents"] = {
        "address": stream,
        "title": "Event stream",
        "description": (
            f"Redis Stream (`QUOTA_EVENTS_STREAM`, default `{DEFAULT_STREAM}`). Read it with "
            "consumer groups (XREADGROUP) and acknowledge after handling; it can be replayed "
            "from the start. Each event is published at least once with a stable `id`: "
            "deduplicate on it."
        ),
        "messages": {
            _message_id(t): {"$ref": f"#/components/messages/{_message_id(t)}"} for t in EVENT_DATA
        },
    }
    for event_type, data_model in EVENT_DATA.items():
        messages[_message_id(event_type)] = _event_message(
            event_type, data_model, examples[event_type]
        )
        operations["send_" + _message_id(event_type)] = {
            "action": "send",
            "title": f"Publish {event_type}",
            "channel": {"$ref": "#/channels/quotaEvents"},
            "messages": [{"$ref": f"#/channels/quotaEvents/messages/{_message_id(event_type)}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "quota-worker",
            "version": package_version(),
            "description": (
                "Applies Service Mail address-limit changes. Checkout, payments and the mail "
                "platform send Celery task messages to three queues; the worker validates "
                "them, waits for the payment, applies the new limit and publishes CloudEvents "
                "to a Redis Stream. The rules and states are in the README and CONTRACT.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {
                "host": "localhost:6379",
                "protocol": "redis",
                "description": "Broker (Celery's Redis transport: one list per queue) and the "
                "event stream. `QUOTA_BROKER_URL`, `QUOTA_REDIS_URL`.",
            },
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "The scale-out broker: the default exchange routes to each "
                "queue by name. `QUOTA_BROKER_URL=amqp://...`.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _components_schemas()},
    }


def render(document: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100))
