"""A downstream consumer, e.g. the customer's dashboard: reads the quota events with QuotaEvents.

    python examples/downstream_consumer.py [--group dashboard] [--max-events N]

Prints one JSON line per event handled. Run it twice with the same --group
and the two share the work; with another --group each gets every event.
QUOTA_REDIS_URL defaults to the embedded Redis of `quota-worker dev`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

from events.schemas import QuotaChangedData
from events.subscriber import Event, QuotaEvents


def default_redis() -> str:
    data_dir = Path(os.environ.get("QUOTA_DATA_DIR", "var")).resolve()
    return os.environ.get("QUOTA_REDIS_URL", f"unix://{data_dir / 'redis.sock'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default=default_redis(), help="Redis URL (QUOTA_REDIS_URL)")
    parser.add_argument("--stream", default=os.environ.get("QUOTA_EVENTS_STREAM", "quota.events"))
    parser.add_argument("--group", default="dashboard", help="consumer group")
    parser.add_argument("--max-events", type=int, default=None, help="stop after N events")
    args = parser.parse_args()

    limits: dict[str, int] = {}  # this "dashboard"'s own state

    def handle(event: Event) -> None:
        if isinstance(event.data, QuotaChangedData):
            limits[event.data.service_mail_id] = event.data.address_limit
        print(json.dumps({"type": event.type, "subject": event.subject, "id": event.id,
                          "data": event.cloudevent.data}), flush=True)  # fmt: skip

    events = QuotaEvents(args.redis, args.stream)
    signal.signal(signal.SIGTERM, lambda *_: events.stop())
    signal.signal(signal.SIGINT, lambda *_: events.stop())
    events.consume(args.group, handle, block_seconds=1, max_events=args.max_events)


if __name__ == "__main__":
    main()
