"""Conversations on disk (SQLite) and their exports."""
