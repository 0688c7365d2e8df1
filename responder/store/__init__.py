"""Persistence: the engine, the schema migrations, the tables and the audit log."""
