"""Controller: the replicated cluster-metadata state machine (topics, replica placement, broker
registrations, replica-move targets, producer-id blocks); see ``streamraft_broker.replication`` for how it
is wired, ``replication.membership`` and ``replication.reassign`` for membership and moves."""
