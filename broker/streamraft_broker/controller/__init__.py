"""Controller: the replicated cluster-metadata state machine (topics and replica placement); see
``streamraft_broker.replication`` for how it is wired."""
