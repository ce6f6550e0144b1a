"""The comparison table's arithmetic: medians, max aggregation, ratios and marked cells."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.kafka_compare.report import Results


def test_table_medians_ratio_and_marks(tmp_path: Path) -> None:
    r = Results()
    for v in (10.0, 30.0, 20.0):
        r.add("Kafka", "produce", "MB/s", v, higher=True)
    for v in (5.0, 1.0, 9.0):
        r.add("Streamraft", "produce", "MB/s", v, higher=True)
    for v in (1.0, 7.0):
        r.add("Kafka", "failover max", "s", v, higher=False, agg="max")
    r.mark("Streamraft", "failover max", "s", "n/a: single node", agg="max")
    lines = r.table().splitlines()
    produce = next(ln for ln in lines if ln.startswith("produce"))
    cells = [c.strip() for c in produce.split("|")]
    assert cells[1:] == ["20 (n=3)", "5 (n=3)", "0.25"]
    fail = [c.strip() for c in next(ln for ln in lines if ln.startswith("failover")).split("|")]
    assert fail[1:] == ["7 (n=2)", "n/a: single node", "n/a"]
    doc = json.loads(r.dump(tmp_path).read_text())
    assert doc["figures"]["produce"]["value"] == {"Kafka": 20.0, "Streamraft": 5.0}


def test_load_round_trips_a_dump(tmp_path: Path) -> None:
    r = Results()
    r.add("Kafka", "failover max", "s", 3.0, higher=False, agg="max")
    r.add("Kafka", "failover max", "s", 9.0, higher=False, agg="max")
    r.mark("Streamraft", "failover max", "s", "n/a: not run", agg="max")
    r.latency_curves["Kafka 1 MB/s"] = {"samples_ms": [1.0, 2.0]}
    back = Results.load(r.dump(tmp_path))
    assert back.table() == r.table()
    assert back.figures["failover max"].value("Kafka") == 9.0
    assert back.latency_curves == r.latency_curves
