"""Rendering a command's result: the same rows as an aligned table for people or JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

Row = Mapping[str, object]


def table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    """An aligned text table with upper-case headers; missing values print as ``-``."""
    cells = [[str(c).upper() for c in columns]]
    cells += [["-" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def as_json(doc: object) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, default=str)
