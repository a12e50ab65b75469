"""Remoting transport shared by the name server and the broker: TCP listener, connections, dispatch."""
