"""The custom resource definitions, written once in Python; `streamraft_operator.gen` renders them."""

from streamraft_operator.crds.streamcluster import stream_cluster_crd
from streamraft_operator.crds.streamtopic import stream_topic_crd
from streamraft_operator.crds.streamuser import stream_user_crd

__all__ = ["all_crds", "stream_cluster_crd", "stream_topic_crd", "stream_user_crd"]


def all_crds() -> list[dict[str, object]]:
    return [stream_cluster_crd(), stream_topic_crd(), stream_user_crd()]
