"""Topic and partition registry on one node: persisted topic metadata, configs and partition logs."""
