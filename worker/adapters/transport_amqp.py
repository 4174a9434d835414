"""kombu's py-amqp transport, taught the two things the envelope checks need.

- The queue a message came from. RabbitMQ's `delivery_info` holds the
  exchange and routing key the publisher chose, which need not name the queue
  (a queue bound to a fanout or topic exchange receives other keys). Each
  consumer tag belongs to one queue, so the tag of a delivery tells its queue:
  it is set as `delivery_info["quota_queue"]`, which `worker.entrypoints.envelope.check`
  reads.
- A compressed body is never decompressed: kombu's `Message` would do it
  while it is built, before any check (a decompression bomb). The
  `compression` header is taken out and the message marked as refused.

``install()`` (called by ``worker.entrypoints.app.create_app``) makes it the transport
of ``amqp://``, ``amqps://`` and ``pyamqp://`` URLs, through
`worker.adapters.transport.register` (kombu's private registry is touched there
only), after refusing a kombu version it was not tested with.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import pyamqp

from worker.adapters import deliveries, transport, versions


class Message(pyamqp.Message):
    def __init__(self, msg: Any, channel: Any = None, **kwargs: Any) -> None:
        headers = msg.properties.get("application_headers")
        compression = headers.pop("compression", None) if isinstance(headers, dict) else None
        super().__init__(msg, channel=channel, **kwargs)
        info = dict(self.delivery_info or {})
        queues = getattr(channel, "quota_queues", {})
        info[deliveries.QUEUE_KEY] = queues.get(info.get("consumer_tag"))
        self.delivery_info = info
        if compression is not None:
            self.properties = {
                **self.properties,
                deliveries.REFUSED_KEY: f"compressed bodies are refused ({compression!r})",
            }


class Channel(pyamqp.Channel):
    Message = Message

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Consumer tag -> the queue it consumes.
        self.quota_queues: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def basic_consume(
        self, queue: str = "", consumer_tag: str = "", *args: Any, **kwargs: Any
    ) -> Any:
        tag = super().basic_consume(queue, consumer_tag, *args, **kwargs)
        self.quota_queues[str(tag or consumer_tag)] = queue
        return tag


class Connection(pyamqp.Connection):
    Channel = Channel


class Transport(pyamqp.Transport):
    Connection = Connection


class SSLTransport(pyamqp.SSLTransport):
    Connection = Connection


def install() -> None:
    """Make this the transport of AMQP URLs here."""
    versions.check("kombu")
    for scheme, name in (("amqp", "Transport"), ("pyamqp", "Transport"), ("amqps", "SSLTransport")):
        transport.register(scheme, f"{__name__}:{name}")
