"""The Streamraft broker: Kafka wire protocol over Raft-replicated partition logs."""
