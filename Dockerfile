# quota-worker: `docker compose up` runs migrate once, then the worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 QUOTA_LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY events ./events
COPY worker ./worker
COPY bench ./bench
RUN pip install . && useradd --system --uid 10001 --home-dir /app quota
USER quota

ENTRYPOINT ["quota-worker"]
CMD ["run"]
