"""Alembic migrations of the store, run programmatically by :mod:`core.store.migrate`."""
