"""Runnable examples of Kafka-client applications against Streamraft (not part of the distribution)."""
