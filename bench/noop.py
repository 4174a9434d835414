"""The baseline: the worker's own Celery configuration, queues and task names, no-op tasks.

`celery -A bench.noop:app worker ...` with the same layout as `quota-worker run`
drains the very same messages doing nothing, so the ratio of the two rates is
what the domain, the database, the outbox and the stream cost.
"""

from __future__ import annotations

from typing import Any

from events.inbound import INBOUND
from worker.entrypoints.app import create_app, prefetch
from worker.settings import Settings

# The worker's app (its transport, consumer and settings) without the worker's tasks,
# holding as many messages unacknowledged as the batching worker of the same settings
# (QUOTA_BATCH_MAX), but running each alone: Celery's own path, nothing batched.
_settings = Settings()
app = create_app(_settings.model_copy(update={"batch_max": 1}))
app.conf.update(prefetch(_settings))
app.conf.imports = ()


def _noop(*args: Any, **kwargs: Any) -> str:
    return "noop"


for _name in INBOUND:
    app.task(name=_name)(_noop)
