"""Kafka RecordBatch v2 at the byte level: parse, validate and rewrite headers without touching records."""

from .batch import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    BatchHeader,
    Compression,
    TimestampType,
    compute_crc,
    iter_batches,
    parse_header,
    rewrite_for_append,
    validate_batch,
    validate_produce_batch,
)
from .builder import SimpleRecord, build_batch, build_empty_batch, decode_records
from .errors import InvalidRecordError, KafkaErrorCode

NONE = Compression.NONE

__all__ = [
    "BATCH_HEADER_SIZE",
    "LOG_OVERHEAD",
    "MAGIC_V2",
    "NONE",
    "BatchHeader",
    "Compression",
    "InvalidRecordError",
    "KafkaErrorCode",
    "SimpleRecord",
    "TimestampType",
    "build_batch",
    "build_empty_batch",
    "compute_crc",
    "decode_records",
    "iter_batches",
    "parse_header",
    "rewrite_for_append",
    "validate_batch",
    "validate_produce_batch",
]
