"""The RocketMQ remoting wire format, sans-IO: bytes in, typed objects out, and back."""
