"""Proof that a broker-to-broker Kafka request (UnregisterBroker, AlterPartition) comes from a registered
broker, for clusters without authentication.

Those requests travel on the Kafka port, which clients reach too. The sender puts
``streamraft-broker/<node id>/<HMAC-SHA256>`` in the request header's client id, keyed by its
incarnation id and computed over what the request asks for. The incarnation id is known only to the broker
and, through the controller log, to the other brokers (Metadata and every Kafka API leave it out), so a
plain Kafka client cannot produce a valid proof. With TLS/SASL and an authorizer, ClusterAction on the
Cluster is the stronger check; the proof still lets brokers on a PLAINTEXT listener talk to each other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from streamraft_broker.controller.state import BROKER_DECOMMISSIONED, BrokerReg

PREFIX = "streamraft-broker/"


def _mac(incarnation: str, message: str) -> str:
    return hmac.new(incarnation.encode(), message.encode(), hashlib.sha256).hexdigest()


def client_id(node: int, incarnation: str, message: str) -> str:
    """The client id a broker sends with a request asking ``message``."""
    return f"{PREFIX}{node}/{_mac(incarnation, message)}"


def sender(client: str | None, brokers: Mapping[int, BrokerReg], message: str) -> int | None:
    """The registered, not decommissioned broker that signed ``message`` in ``client``, else None."""
    if client is None or not client.startswith(PREFIX):
        return None
    node_text, _, mac = client[len(PREFIX) :].partition("/")
    if not node_text.isdigit() or len(node_text) > 10:
        return None
    reg = brokers.get(int(node_text))
    if reg is None or reg.state == BROKER_DECOMMISSIONED:
        return None
    return reg.node_id if hmac.compare_digest(mac, _mac(reg.incarnation, message)) else None


def unregister_message(broker_id: int) -> str:
    return f"unregister:{broker_id}"


def alter_partition_message(topic_id: str, partition: int, voters: list[int]) -> str:
    return f"alter_partition:{topic_id}:{partition}:{','.join(str(v) for v in sorted(voters))}"
