"""The baseline: the worker's own Celery configuration, queues and task names, no-op tasks.

`celery -A bench.noop:app worker ...` with the same layout as `quota-worker run`
drains the very same messages doing nothing, so the ratio of the two rates is
what the domain, the database, the outbox and the stream cost.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from events.inbound import INBOUND
from worker.entrypoints.app import celery_config
from worker.settings import Settings

app = Celery("quota-worker-baseline", set_as_current=True)
app.conf.update(celery_config(Settings()))


def _noop(*args: Any, **kwargs: Any) -> str:
    return "noop"


for _name in INBOUND:
    app.task(name=_name)(_noop)
