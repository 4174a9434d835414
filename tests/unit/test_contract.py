"""The published contract documents: generated from the models, equal to what is committed,
and equal to what the worker really sends and accepts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from domain import events as domain_events
from events import contract, outbound
from events.asyncapi import asyncapi
from events.examples import INBOUND_EXAMPLES, event_examples
from events.inbound import INBOUND, QUEUES
from events.schemas import EVENT_DATA, CloudEvent

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "contract"
REGENERATE = "the committed contract/ is stale: run `make contract` and commit the result"


def test_committed_json_schemas_are_the_generated_ones() -> None:
    generated = contract.json_schemas()
    committed = {
        str(p.relative_to(COMMITTED / "schemas")): json.loads(p.read_text())
        for p in (COMMITTED / "schemas").rglob("*.json")
    }
    assert sorted(committed) == sorted(generated), REGENERATE
    for name, schema in generated.items():
        assert committed[name] == json.loads(contract.render(schema, "json")), (name, REGENERATE)


def test_committed_asyncapi_is_the_generated_one() -> None:
    committed = yaml.safe_load((COMMITTED / "asyncapi.yaml").read_text())
    assert committed == yaml.safe_load(contract.render(asyncapi(), "yaml")), REGENERATE


def test_a_model_change_shows_as_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drift check above can fail: a new field changes the generated schema."""
    before = contract.json_schemas()["inbound/quota.cancel_change.json"]
    model = INBOUND["quota.cancel_change"].model
    extended = type("CancelChange", (model,), {"__annotations__": {"note": str}})
    monkeypatch.setitem(INBOUND, "quota.cancel_change", ("quota.orders", extended))
    after = contract.json_schemas()["inbound/quota.cancel_change.json"]
    assert "note" in after["properties"] and before != after


@pytest.mark.parametrize("name", sorted(INBOUND))
def test_every_inbound_example_is_accepted_by_the_worker_schema(name: str) -> None:
    INBOUND[name].model.model_validate(INBOUND_EXAMPLES[name])


@pytest.mark.parametrize("name", sorted(INBOUND))
def test_inbound_schema_forbids_unknown_fields_and_requires_every_field(name: str) -> None:
    schema = contract.json_schemas()[f"inbound/{name}.json"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(INBOUND[name].model.model_fields)
    assert all(prop.get("description") for prop in schema["properties"].values()), name


def test_every_domain_event_has_a_data_model_with_exactly_its_wire_fields() -> None:
    examples = event_examples()
    assert set(examples) == set(EVENT_DATA) == set(outbound.EVENT_TYPES.values())
    for event_class, event_type in outbound.EVENT_TYPES.items():
        wire = {f.name for f in dataclasses.fields(event_class)}
        if event_class is domain_events.RefundRequired:
            wire.discard("service_mail_id")  # the entry's subject, not data
        assert set(EVENT_DATA[event_type].model_fields) == wire, event_type
        body = examples[event_type]
        CloudEvent.model_validate(body)
        EVENT_DATA[event_type].model_validate(body["data"])


def test_data_models_refuse_an_unknown_reason_code() -> None:
    data = event_examples()["mail.quota.change.rejected"]["data"]
    with pytest.raises(ValidationError, match="must be one of"):
        EVENT_DATA["mail.quota.change.rejected"].model_validate({**data, "reason": "because"})


def test_asyncapi_has_every_queue_message_and_event() -> None:
    doc = asyncapi(stream="custom.stream")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {*QUEUES, "custom.stream"}
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == set(INBOUND) | set(EVENT_DATA)
    for message in doc["components"]["messages"].values():
        ref = (
            message["payload"].get("$ref")
            or message["payload"]["allOf"][1]["properties"]["data"]["$ref"]
        )
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"]
        assert message["examples"], message["name"]
    for name, (queue, _model) in INBOUND.items():
        message = doc["components"]["messages"][name.replace(".", "_")]
        assert message["headers"]["properties"]["task"]["const"] == name
        assert f"`{queue}`" in message["description"]


def test_every_json_schema_ref_resolves_inside_the_document() -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "$ref"] + [
                r for v in node.values() for r in refs(v)
            ]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for name, schema in contract.json_schemas().items():
        for ref in refs(schema):
            assert ref.startswith("#/$defs/"), (name, ref)
            assert ref.removeprefix("#/$defs/") in schema["$defs"], (name, ref)


def test_the_contract_commands_write_what_is_generated(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from worker.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["contract", "schemas", "--out", str(tmp_path / "s")])
    assert done.exit_code == 0, done.output
    written = {str(p.relative_to(tmp_path / "s")) for p in (tmp_path / "s").rglob("*.json")}
    assert written == set(contract.json_schemas())
    done = runner.invoke(main, ["contract", "asyncapi", "--format", "json"],
                         env={"QUOTA_EVENTS_STREAM": "billing.events"})  # fmt: skip
    assert done.exit_code == 0, done.output
    document = json.loads(done.output)
    assert document["channels"]["quotaEvents"]["address"] == "billing.events"


def test_committed_openapi_is_the_generated_one() -> None:
    from worker.api.app import openapi_document

    committed = json.loads((COMMITTED / "openapi.json").read_text())
    assert committed == json.loads(contract.render(openapi_document(), "json")), REGENERATE


def test_the_openapi_document_is_3_1_with_every_call_of_the_contract() -> None:
    from worker.api.app import openapi_document

    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/healthz",
        "/readyz",
        "/v1/service-mails/{service_mail_id}",
        "/v1/service-mails/{service_mail_id}/quote",
        "/v1/orders/{order_id}",
        "/v1/requests/{request_id}",
    }
    for path, item in document["paths"].items():
        needs_token = path.startswith("/v1/")
        assert bool(item["get"].get("security")) is needs_token, path
