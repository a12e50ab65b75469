"""pocketmq remoting."""
