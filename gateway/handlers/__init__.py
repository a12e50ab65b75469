"""pocketmq gateway/handlers."""
