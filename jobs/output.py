"""Print query results as an aligned table, CSV or JSON; keep hostile text off the terminal.

Model ids, card fields and error messages come from outside (Hub repos, model cards,
folder names). `escape` turns every control character (ANSI escape sequences, carriage
returns, bidi overrides) into a visible `\\xNN` / `\\uNNNN` form, and `EscapingWriter` does
it for a whole stream, so the CLI can guarantee that nothing it prints drives the terminal.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import TextIO

FORMATS = ("table", "csv", "json")
MAX_CELL = 60

# C0 controls, DEL, C1 controls, and the Unicode bidi overrides/isolates ("Trojan Source").
_CONTROL = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F),
            *range(0x2066, 0x206A)]


def _visible(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_ESCAPES = {c: _visible(c) for c in _CONTROL}


def escape(text: str, keep: str = "") -> str:
    """`text` with every control character written out visibly, except those in `keep`."""
    table = _ESCAPES if not keep else {k: v for k, v in _ESCAPES.items() if chr(k) not in keep}
    return text.translate(table)


class EscapingWriter:
    """A text stream that escapes control characters on their way to `stream`.

    `keep` lists the ones that stay (newline and tab on stdout; carriage return too on
    stderr, where progress bars redraw their line)."""

    def __init__(self, stream: TextIO, keep: str = "\n\t") -> None:
        self._stream = stream
        self._table = {k: v for k, v in _ESCAPES.items() if chr(k) not in keep}

    def write(self, text: str) -> int:
        return self._stream.write(text.translate(self._table))

    def __getattr__(self, name: str) -> object:  # flush, isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = escape(str(value))
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def print_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    fmt: str = "table",
    out: TextIO | None = None,
) -> None:
    out = out or sys.stdout
    if fmt == "json":  # json escapes control characters itself (\u001b)
        json.dump(
            [dict(zip(columns, row, strict=True)) for row in rows], out, default=str, indent=2
        )
        out.write("\n")
    elif fmt == "csv":
        # Unix line ends; newlines inside a field stay (quoted), other controls are escaped.
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([escape(c, keep="\n") for c in columns])
        writer.writerows([[("" if v is None else escape(str(v), keep="\n\t")) for v in row]
                          for row in rows])
    else:
        cells = [[_cell(v) for v in row] for row in rows]
        names = [escape(c) for c in columns]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(names)]
        line = "  ".join(c.ljust(w) for c, w in zip(names, widths, strict=True))
        out.write(line + "\n" + "  ".join("-" * w for w in widths) + "\n")
        for row in cells:
            out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
