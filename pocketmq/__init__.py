"""pocketmq pocketmq."""
