"""Watching boards: live view, recording (JSON lines, SQLite, MQTT) and reports."""
