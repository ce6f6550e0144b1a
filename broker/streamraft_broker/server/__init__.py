"""asyncio Kafka server: connections, request dispatch, zero-copy fetch writes, broker lifecycle."""
