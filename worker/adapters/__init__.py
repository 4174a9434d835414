"""Adapters: the database (tables, SQL, migrations), the broker transports, the stream relay."""
