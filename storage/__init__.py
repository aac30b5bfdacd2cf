"""Persistence: SQLAlchemy 2 async models, repository functions and Alembic migrations."""
