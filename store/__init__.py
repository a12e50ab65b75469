"""Persistence for pocketmq: messages, consumer offsets and topic configs (SQLite behind a narrow API)."""
