"""Alembic environment: the URL comes from the caller (quota-worker db upgrade)."""

from __future__ import annotations

from alembic import context

from worker.adapters.db import make_engine
from worker.adapters.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "run migrations through `quota-worker db upgrade`"

if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
