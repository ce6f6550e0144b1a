"""A failing disk (here: the file-size limit, which makes writes fail with EFBIG like ENOSPC would): the
append fails with KAFKA_STORAGE_ERROR, nothing partial is left, and the log works again afterwards.

Run as ``python -m tests.broker.test_log_storage_errors <dir>`` to be the child that hits the limit.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

from streamraft_broker.log import LogConfig, LogStorageError, PartitionLog
from streamraft_broker.records import SimpleRecord, build_batch, iter_batches

CONFIG = LogConfig(segment_bytes=1 << 20)
LIMIT = 4000


def _batch(i: int) -> bytes:
    return build_batch([SimpleRecord(None, b"%d" % i * 100)], timestamp_ms=i)


def child(directory: Path) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    log = PartitionLog.open(directory, CONFIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))
    acked = 0
    error: dict[str, object] = {}
    for i in range(1000):
        try:
            log.append(_batch(i))
            acked += 1
        except LogStorageError as exc:
            error = {"code": exc.error_code, "message": str(exc), "end": log.log_end_offset}
            break
    failed_again = False
    try:
        log.append(_batch(9999))
    except LogStorageError:
        failed_again = True
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    info = log.append(_batch(acked))  # the disk "recovered": the log carries on
    log.close()
    print(
        json.dumps({"acked": acked, "error": error, "failed_again": failed_again, "next": info.base_offset})
    )


def test_append_reports_storage_error_and_recovers(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.broker.test_log_storage_errors", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout)
    assert 0 < result["acked"] < 1000
    assert result["error"]["code"] == 56
    assert "00000000000000000000.log" in result["error"]["message"]
    assert result["error"]["end"] == result["acked"]
    assert result["failed_again"]
    assert result["next"] == result["acked"]
    log = PartitionLog.open(tmp_path, CONFIG)
    try:
        assert log.recovery_truncations == 0
        data = log.read_bytes(0, 1 << 20)
        assert [h.base_offset for _, h in iter_batches(data)] == list(range(result["acked"] + 1))
    finally:
        log.close()


if __name__ == "__main__":
    child(Path(sys.argv[1]))
