"""Entry points: the Celery app, its tasks and consumer (with the envelope checks), `run`."""
