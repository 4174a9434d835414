"""quota-worker: the Celery worker, its adapters and its commands."""
