"""The contract as documents, generated from the models so they cannot drift.

- `json_schemas()`: a JSON Schema (2020-12) per inbound message and per event's
  `data`, plus the CloudEvents envelope.
- `events.asyncapi.asyncapi()`: an AsyncAPI 3.0 document: the three queues and
  the event stream as channels, every message with its payload, headers and
  examples (`events.examples`).

`quota-worker contract schemas|asyncapi` writes them (`render`); `contract/` in
the repository holds the committed copies and a test fails when they are stale.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

from events.examples import INBOUND_EXAMPLES, event_examples
from events.inbound import INBOUND
from events.schemas import EVENT_DATA, CloudEvent

SCHEMA_BASE = "https://quota-worker.invalid/contract/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


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


def render(document: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100))
