"""The broker's ``apache.rocketmq.v2.MessagingService``: what the Apache 5.x proxy answers, over the same store and
registries as the remoting side (docs/grpc.md)."""
