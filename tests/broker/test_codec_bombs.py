"""Decompression bombs: every codec stops inflating at the cap, in chunks, and answers CORRUPT_MESSAGE
naming the codec and the cap; a broker asked to look inside a stored bomb keeps its memory bounded."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kio.schema.create_topics.v7 import request as ct
from kio.schema.list_offsets.v7 import request as lo
from kio.schema.produce.v9 import request as pr
from streamraft_broker.protocol.codec import build
from streamraft_broker.records.batch import Compression
from streamraft_broker.records.codec import compress, decompress
from streamraft_broker.records.errors import InvalidRecordError

from tests.support.bombs import (
    MIB,
    batch_around,
    gzip_bomb,
    lz4_bomb,
    raw_snappy_bomb,
    xerial_snappy_bomb,
    zstd_bomb,
)
from tests.support.broker import running_broker
from tests.support.memory import peak_rss, reset_peak_rss
from tests.support.wire import WireClient

CORRUPT_MESSAGE = 2
CAP = 8 * MIB
BOMBS: dict[str, tuple[Compression, Callable[[int], bytes], int]] = {
    "gzip": (Compression.GZIP, gzip_bomb, 256 * MIB),
    "lz4": (Compression.LZ4, lz4_bomb, 256 * MIB),
    "zstd": (Compression.ZSTD, zstd_bomb, 256 * MIB),
    "xerial-snappy": (Compression.SNAPPY, xerial_snappy_bomb, 256 * MIB),
    # Raw snappy can only be built from the whole input; its declared length is refused up front anyway.
    "raw-snappy": (Compression.SNAPPY, raw_snappy_bomb, 64 * MIB),
}
PEAK_BOUND = 48 * MIB
"""What inflating one bomb against an 8 MiB cap may add to a process's peak RSS (the cap, one chunk past
it, the library's own buffers); the old code inflated every bomb whole (64..256 MiB)."""

_MEASURE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from streamraft_broker.records.batch import Compression
    from streamraft_broker.records.codec import decompress
    from streamraft_broker.records.errors import InvalidRecordError
    bomb = Path(sys.argv[1]).read_bytes()
    codec, cap = Compression(int(sys.argv[2])), int(sys.argv[3])
    Path("/proc/self/clear_refs").write_text("5")
    def peak():
        status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
        return int(status.split()[0]) * 1024
    before = peak()
    try:
        decompress(codec, bomb, max_bytes=cap)
        result = {"error": None}
    except InvalidRecordError as exc:
        result = {"error": str(exc), "code": exc.error_code}
    result["grew"] = peak() - before
    print(json.dumps(result))
    """
)


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_each_codec_stops_at_the_cap_with_bounded_memory(name: str, tmp_path: Path) -> None:
    codec, make, inflated = BOMBS[name]
    path = tmp_path / "bomb"
    path.write_bytes(make(inflated))
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(int(codec)), str(CAP)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["error"] is not None, f"{name}: a {inflated >> 20} MiB bomb inflated under a {CAP} cap"
    assert result["code"] == CORRUPT_MESSAGE
    assert codec.name in result["error"] and f"cap of {CAP} bytes" in result["error"]
    assert result["grew"] < PEAK_BOUND, f"{name}: peak RSS grew {result['grew'] >> 20} MiB"


@pytest.mark.parametrize("codec", [c for c in Compression if c is not Compression.NONE])
def test_batches_up_to_the_cap_still_inflate(codec: Compression) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    assert decompress(codec, compress(codec, data), max_bytes=len(data)) == data
    with pytest.raises(InvalidRecordError, match=f"{codec.name} records inflate beyond the cap of"):
        decompress(codec, compress(codec, data), max_bytes=len(data) - 1)


def test_concatenated_lz4_frames_are_read_whole() -> None:
    assert decompress(Compression.LZ4, compress(Compression.LZ4, b"a" * 10) * 2) == b"a" * 20


BROKER_PEAK_BOUND = 256 * MIB
"""The default cap is 100 MiB (Kafka's socket.request.max.bytes default); a 1 GiB bomb added 1.78 GiB."""


def test_broker_looking_up_a_timestamp_inside_a_1gib_lz4_bomb_stays_bounded() -> None:
    now = int(time.time() * 1000)
    batch = batch_around(Compression.LZ4, lz4_bomb(1024 * MIB), timestamp_ms=now)
    with running_broker(metrics=False) as broker, WireClient(broker.host, broker.port, timeout=30) as c:
        config = build(ct.CreatableTopicConfig, name="max.message.bytes", value=str(8 * MIB))
        topic = build(
            ct.CreatableTopic,
            name="bombs",
            num_partitions=1,
            replication_factor=1,
            assignments=(),
            configs=(config,),
        )
        created = c.request(
            19,
            7,
            build(
                ct.CreateTopicsRequest,
                topics=(topic,),
                timeout=datetime.timedelta(seconds=5),
                validate_only=False,
            ),
        )
        assert int(created.topics[0].error_code) == 0
        part = build(pr.PartitionProduceData, index=0, records=batch)
        produce = build(
            pr.ProduceRequest,
            transactional_id=None,
            acks=1,
            timeout=5000,
            topic_data=(build(pr.TopicProduceData, name="bombs", partition_data=(part,)),),
        )
        assert int(c.request(0, 9, produce).responses[0].partition_responses[0].error_code) == 0
        assert broker.pid is not None
        reset_peak_rss(broker.pid)
        before = peak_rss(broker.pid)
        query = build(lo.ListOffsetsPartition, partition_index=0, current_leader_epoch=-1, timestamp=now)
        answer = c.request(
            2,
            7,
            build(
                lo.ListOffsetsRequest,
                replica_id=-1,
                isolation_level=0,
                topics=(build(lo.ListOffsetsTopic, name="bombs", partitions=(query,)),),
            ),
        )
        grew = peak_rss(broker.pid) - before
        assert int(answer.topics[0].partitions[0].error_code) == 0
        assert grew < BROKER_PEAK_BOUND, f"broker peak RSS grew {grew >> 20} MiB"
        assert "LZ4 records inflate beyond the cap of" in broker.log_path.read_text()
