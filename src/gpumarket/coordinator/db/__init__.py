"""Persistence: engine, sessions, ORM models and alembic migrations."""
