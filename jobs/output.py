"""Print query results as an aligned table, CSV or JSON."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import TextIO

FORMATS = ("table", "csv", "json")
MAX_CELL = 60


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def print_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    fmt: str = "table",
    out: TextIO | None = None,
) -> None:
    out = out or sys.stdout
    if fmt == "json":
        json.dump(
            [dict(zip(columns, row, strict=True)) for row in rows], out, default=str, indent=2
        )
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([[("" if v is None else v) for v in row] for row in rows])
    else:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
        out.write(line + "\n" + "  ".join("-" * w for w in widths) + "\n")
        for row in cells:
            out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
