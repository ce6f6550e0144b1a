"""Replication: every partition is a Raft group; cluster metadata lives in a controller group.

Design (enabled with ``--replication raft``, the default of ``streamraft local up``):

- One consensus ``Runtime`` per broker process, its gRPC transport on the member's raft address.
  ``--cluster-members ID=KAFKA_HOST:PORT/RAFT_HOST:PORT,...`` names the founding brokers (env
  STREAMRAFT_CLUSTER_MEMBERS; ``--raft-listen``/STREAMRAFT_RAFT_LISTEN overrides the bind address).
- Group 1 is the controller (the runtime reserves group ids >= 1, so "group 0" of the design is id 1):
  voters are the first three members (by id), the others follow as learners so every broker applies the
  metadata log. Its state machine (``controller.state``) holds broker registrations (id, addresses, rack,
  incarnation id; ``membership``), topics (id, name, replica set per partition, configs, move targets) and
  producer-id blocks (``producer_ids``). CreateTopics, DeleteTopics and CreatePartitions are proposed by
  the controller's Raft leader; Metadata names that leader as the controller, so clients send them there
  (other brokers answer NOT_CONTROLLER and clients retry). Placement spreads replicas, leaders and racks
  over the registered brokers (RF odd, default min(3, brokers)).
- A partition's group id is derived stably from (topic id, partition) (``group_id_for``).
- Raft log and partition log (``partition_storage``, the default ``--raft-log partition``): a partition's
  Raft log IS its Kafka log. Each data entry is one record batch, written once per replica into the
  partition's segments as the entry reaches that replica's log; its offsets are assigned there (base offset
  = the log end before it, partitionLeaderEpoch = the entry's Raft term), identically on every replica since
  their logs match. Raft's own entries (a new leader's empty entry, configuration changes) take no offset:
  they live in a small journal beside the segments, so consumers see neither a gap nor a bogus record. The
  high watermark is the end of the last committed entry applied here; fetches never read past it, and
  uncommitted batches in the log are invisible. The leader validates batches, sets LogAppendTime and checks
  idempotent producers' sequences (against the log plus its own batches still in flight) before proposing,
  so a duplicate never enters the log; every replica's producer state follows its log as batches are
  appended (and is rebuilt from the log after a conflict truncation). Retention moves the log start through a
  Raft snapshot (a position: index, term, offset); a replica behind it installs the snapshot and restarts its
  log there, as a new Kafka replica copies from the leader's log start. ``--raft-log separate`` keeps the
  earlier layout: a consensus SegmentLog per group whose committed entries are copied into the partition log
  as they apply (two writes per replica, partition logs rebuilt from the Raft logs on restart, no snapshots).
- Consumer-group offsets live in the
  replicated ``__consumer_offsets`` topic, whose partitions' Raft leaders are the group coordinators
  (``group_offsets``); producer ids come in blocks granted through the controller log, so no two brokers
  ever hand out the same id.
- A fetch past a replica's end is OFFSET_OUT_OF_RANGE only from a leader that has applied its whole Raft
  log; any other replica (e.g. a new leader still applying) answers the retriable NOT_LEADER_OR_FOLLOWER.
- Every 10 s a leader hands a partition back to its preferred (first) replica if that broker is
  connected, so leaders spread over brokers as placement spread first replicas.
- Produce (acks=1 and acks=all alike) is answered after the batch is committed on a majority (fsynced)
  and applied locally: acks=1 gets the stronger acks=all promise. Produce to a non-leader answers
  NOT_LEADER_OR_FOLLOWER; Metadata names the Raft leader and leader epoch = Raft term.
- Idempotent producers (``--raft-log separate``): the producer-state hook runs at apply time on every
  replica in the same order, so each replica's duplicate detection reaches the same verdict.
- SIGTERM: the broker hands each leadership it holds to another voter (bounded) before stopping.
- A broker restarted on an EMPTY data directory rejoins without voting or counting with its blank state
  (demoted to learner in each group, caught up, promoted back): ``replication.rejoin``.
"""
