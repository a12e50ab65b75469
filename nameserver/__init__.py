"""pocketmq nameserver."""
