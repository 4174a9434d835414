"""The app of a Celery worker process, made from the environment's settings when the
process starts: `celery -A worker.entrypoints.worker_app:app worker`, as `quota-worker
run` starts it (worker/entrypoints/runner.py)."""

from worker.entrypoints.app import create_app
from worker.entrypoints.lifeline import die_with_supervisor
from worker.settings import Settings

die_with_supervisor()
app = create_app(Settings())
