"""Database engine, sessions and the declarative base."""

from shared.db.base import Base
from shared.db.engine import Database

__all__ = ["Base", "Database"]
