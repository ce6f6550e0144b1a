"""Kafka transactions: the coordinator's per-transactional-id state machine (`state`), the coordinator that
runs it with durable state (`coordinator`), control records (`markers`) and the per-partition index of open
and aborted transactions behind the last stable offset and read_committed fetches (`partition_index`)."""
