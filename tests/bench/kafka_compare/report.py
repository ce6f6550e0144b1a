"""Turn per-run samples into the comparison table, the JSON dump and the PNG plots."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
from hdrh.histogram import HdrHistogram

from tests.bench.kafka_compare.latency import HDR_DIGITS, HDR_HIGHEST_US, HDR_LOWEST_US

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SYSTEMS = ("Kafka", "Streamraft")


def curve_percentiles(curve: dict[str, list[Any]], qs: list[float]) -> list[float] | None:
    """Latency (ms) at each quantile in ``qs`` (1.0 = max) of one curve: the runs' HDR histograms merged
    ("hdr", encoded, microseconds), or raw samples ("samples_ms", results written before HDR)."""
    if curve.get("hdr"):
        merged = HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)
        for encoded in curve["hdr"]:
            merged.decode_and_add(encoded.encode())
        return [
            (merged.get_max_value() if q >= 1 else merged.get_value_at_percentile(q * 100)) / 1000 for q in qs
        ]
    vals = sorted(curve.get("samples_ms", []))
    if not vals:
        return None
    return [vals[min(len(vals) - 1, round(q * (len(vals) - 1)))] for q in qs]


@dataclass
class Figure:
    """One row of the table: samples per system (one per run), and how to aggregate them."""

    name: str
    unit: str
    higher_is_better: bool
    agg: str = "median"  # or "max"
    samples: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SYSTEMS})
    notes: dict[str, str] = field(default_factory=dict)

    def value(self, system: str) -> float | None:
        vals = self.samples.get(system) or []
        if not vals:
            return None
        return max(vals) if self.agg == "max" else statistics.median(vals)


class Results:
    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.runs: list[dict[str, Any]] = []
        # label -> {"hdr": [encoded HDR histogram per run]} (or "samples_ms" in results from before HDR)
        self.latency_curves: dict[str, dict[str, list[Any]]] = {}
        self.meta: dict[str, Any] = {}

    def figure(self, name: str, unit: str, higher_is_better: bool, agg: str = "median") -> Figure:
        if name not in self.figures:
            self.figures[name] = Figure(name, unit, higher_is_better, agg)
        return self.figures[name]

    def add(
        self, system: str, name: str, unit: str, value: float, *, higher: bool, agg: str = "median"
    ) -> None:
        assert system in SYSTEMS, system
        self.figure(name, unit, higher, agg).samples[system].append(value)

    def mark(self, system: str, name: str, unit: str, note: str, *, agg: str = "median") -> None:
        self.figure(name, unit, False, agg).notes[system] = note

    def table(self) -> str:
        rows = [("figure", "Kafka", "Streamraft", "ratio (S/K)")]
        for f in self.figures.values():
            cells: list[str] = []
            for s in SYSTEMS:
                v = f.value(s)
                if v is not None:
                    n = len(f.samples[s])
                    cells.append(f"{v:.3g}" + (f" (n={n})" if n != 1 else ""))
                else:
                    cells.append(f.notes.get(s, "-"))
            k, st = f.value("Kafka"), f.value("Streamraft")
            ratio = f"{st / k:.2f}" if k and st is not None else "n/a"
            label = f"{f.name} [{f.unit}]" + ("" if f.agg == "median" else f" ({f.agg})")
            rows.append((label, cells[0], cells[1], ratio))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(lines)

    @classmethod
    def load(cls, path: Path) -> Results:
        """Read back a dump (to add rows to an earlier run's results)."""
        doc = json.loads(path.read_text())
        res = cls()
        res.meta = doc["meta"]
        res.runs = doc["runs"]
        for name, f in doc["figures"].items():
            fig = Figure(name, f["unit"], f["unit"] == "MB/s", f["aggregate"], notes=dict(f["notes"]))
            fig.samples = {s: list(f["samples"].get(s, [])) for s in SYSTEMS}
            res.figures[name] = fig
        res.latency_curves = doc.get("latency_curves", {})
        return res

    def dump(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "kafka_compare.json"
        doc = {
            "meta": self.meta,
            "runs": self.runs,
            "latency_curves": self.latency_curves,
            "figures": {
                f.name: {
                    "unit": f.unit,
                    "aggregate": f.agg,
                    "samples": f.samples,
                    "value": {s: f.value(s) for s in SYSTEMS},
                    "notes": f.notes,
                }
                for f in self.figures.values()
            },
        }
        path.write_text(json.dumps(doc, indent=2))
        return path

    def plot(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []
        thr = [f for f in self.figures.values() if f.unit == "MB/s"]
        if thr:
            fig, ax = plt.subplots(figsize=(11, 5))
            x = range(len(thr))
            for i, s in enumerate(SYSTEMS):
                vals = [f.value(s) or 0.0 for f in thr]
                ax.bar([j + (i - 0.5) * 0.4 for j in x], vals, width=0.4, label=s)
            ax.set_xticks(list(x))
            ax.set_xticklabels([f.name for f in thr], rotation=30, ha="right", fontsize=8)
            ax.set_ylabel("MB/s (median of runs)")
            ax.set_title("Throughput: Apache Kafka vs Streamraft")
            ax.legend()
            fig.tight_layout()
            path = out_dir / "throughput.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            made.append(path)
        if self.latency_curves:
            fig, ax = plt.subplots(figsize=(9, 5))
            qs = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0]
            for label, curve in sorted(self.latency_curves.items()):
                ys = curve_percentiles(curve, qs)
                if ys is None:
                    continue
                ax.plot([f"{q * 100:g}" if q < 1 else "max" for q in qs], ys, marker="o", label=label)
            ax.set_yscale("log")
            ax.set_xlabel("percentile")
            ax.set_ylabel("end-to-end latency, ms (log)")
            ax.set_title("End-to-end latency, open loop at fixed rates (acks=all, 1 KiB)")
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = out_dir / "latency_percentiles.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            made.append(path)
        return made
