"""Sans-I/O Kafka wire protocol: framing, request headers, version table, response encoding."""
