"""pocketmq gateway."""
