"""Alembic migrations of the data engine's schema (run by ``zeroseg.engine.db.upgrade``)."""
