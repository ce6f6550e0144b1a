"""Shared test helpers: real broker subprocesses on free ports, a tiny Kafka wire client."""
