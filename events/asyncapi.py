"""The contract's AsyncAPI 3.0 document: the three queues and the event stream as channels.

Every message comes with its payload, headers and examples (`events.examples`);
the payload schemas are the models' own (`events.inbound`, `events.schemas`).
"""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from events.examples import INBOUND_EXAMPLES, event_examples
from events.inbound import INBOUND, QUEUES, Message
from events.schemas import EVENT_DATA, CloudEvent, EventData

DEFAULT_STREAM = "quota.events"
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


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_"))


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
    channels = {_CHANNEL_IDS[queue]: _queue_channel(queue) for queue in QUEUES}
    channels["quotaEvents"] = _stream_channel(stream)
    return {
        "asyncapi": "3.0.0",
        "info": _info(),
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": channels,
        "operations": _operations(),
        "components": {"messages": _messages(), "schemas": _components_schemas()},
    }


def _inbound() -> list[tuple[str, str]]:
    """(queue, message name) of every inbound message, queue by queue."""
    return [(queue, name) for queue in QUEUES for name in _names_on(queue)]


def _operations() -> dict[str, Any]:
    operations = {
        "receive_" + _message_id(name): _receive(name, queue) for queue, name in _inbound()
    }
    for event_type in EVENT_DATA:
        operations["send_" + _message_id(event_type)] = _send(event_type)
    return operations


def _messages() -> dict[str, Any]:
    messages = {
        _message_id(name): _inbound_message(name, queue, INBOUND[name].model)
        for queue, name in _inbound()
    }
    examples = event_examples()
    for event_type, data_model in EVENT_DATA.items():
        messages[_message_id(event_type)] = _event_message(
            event_type, data_model, examples[event_type]
        )
    return messages


def _names_on(queue: str) -> list[str]:
    """The inbound messages that arrive on `queue`, in the contract's order."""
    return [name for name, (q, _m) in INBOUND.items() if q == queue]


def _queue_channel(queue: str) -> dict[str, Any]:
    return {
        "address": queue,
        "title": f"Queue {queue}",
        "description": f"Celery queue fed by {_PRODUCERS[queue]}.",
        "messages": {
            _message_id(n): {"$ref": f"#/components/messages/{_message_id(n)}"}
            for n in _names_on(queue)
        },
        "bindings": {"amqp": {"is": "queue", "queue": {"name": queue, "durable": True}}},
    }


def _stream_channel(stream: str) -> dict[str, Any]:
    return {
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


def _receive(name: str, queue: str) -> dict[str, Any]:
    channel_id = _CHANNEL_IDS[queue]
    return {
        "action": "receive",
        "title": f"Consume {name}",
        "summary": f"The worker consumes `{name}` from `{queue}`.",
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/{_message_id(name)}"}],
    }


def _send(event_type: str) -> dict[str, Any]:
    return {
        "action": "send",
        "title": f"Publish {event_type}",
        "channel": {"$ref": "#/channels/quotaEvents"},
        "messages": [{"$ref": f"#/channels/quotaEvents/messages/{_message_id(event_type)}"}],
    }


def _info() -> dict[str, Any]:
    return {
        "title": "quota-worker",
        "version": package_version(),
        "description": (
            "Applies Service Mail address-limit changes. Checkout, payments and the mail "
            "platform send Celery task messages to three queues; the worker validates "
            "them, waits for the payment, applies the new limit and publishes CloudEvents "
            "to a Redis Stream. The rules and states are in the README and CONTRACT.md."
        ),
    }


def _servers() -> dict[str, Any]:
    return {
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
    }
