"""pocketmq: a RocketMQ-compatible name server and broker, stored in SQLite."""

__version__ = "0.1.0"
