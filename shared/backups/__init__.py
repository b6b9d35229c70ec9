"""Backups: the SQLite database (online backup API) and a Chroma snapshot, with a manifest."""
