"""Alembic migrations of the evocade schema, run by `storage.db.upgrade` (no alembic.ini)."""
