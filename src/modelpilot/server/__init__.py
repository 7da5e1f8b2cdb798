"""Transports: REST and gRPC servers over the engine, and the process runner."""
