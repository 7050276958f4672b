"""What went wrong when ingest keeps nothing, or quarantines most rows for one reason (issue 16).

`Examples` keeps the first few raw values behind each quarantine reason as rows are read; `problem`
turns the counts into one sentence: how many rows, the reason, three example values and the option
that fixes it. It does no I/O and never sees more than a few values per reason.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa

EXAMPLES = 3
_EXAMPLE_CHARS = 80

# The option that fixes each reason; a reason not listed here gets the generic hint.
_HINTS = (
    ("unparseable ts", "map the column that holds the time with --map ts=SOURCE, or set --ts-unit"),
    ("missing ts", "map the column that holds the time with --map ts=SOURCE"),
    ("ts out of range", "set the epoch unit with --ts-unit s|ms|us"),
    ("missing visitor_id", "map the visitor column with --map visitor_id=SOURCE"),
    ("missing url", "map the page column with --map url=SOURCE"),
    ("missing event_type", "map the event column with --map event_type=SOURCE"),
    ("invalid platform", "map a column holding web/app with --map platform=SOURCE, or drop it and use --platform"),
    ("invalid dwell_ms", "map a column of milliseconds with --map dwell_ms=SOURCE, or leave dwell_ms unmapped"),
    ("too many columns", "set the delimiter with --delimiter"),
    ("too few columns", "set the delimiter with --delimiter"),
    ("invalid UTF-8", "re-encode the file as UTF-8"),
    ("unterminated quote", "fix the quoting in the export (each bad line is in quarantine.parquet)"),
    ("misplaced quote", "fix the quoting in the export (each bad line is in quarantine.parquet)"),
    ("malformed JSON", "export one JSON object per line"),
)
# The column whose value shows the problem best, per reason (otherwise the whole row is the example).
_COLUMN = {"unparseable ts": "ts", "ts out of range": "ts", "invalid dwell_ms": "dwell_ms",
           "invalid platform": "platform"}  # fmt: skip


def hint(reason: str) -> str:
    for prefix, text in _HINTS:
        if reason.startswith(prefix):
            return text
    if "longer than" in reason:
        return "nothing to set: values over the limit are refused (docs: What ingest does to your data)"
    return "see quarantine.parquet for every row and its reason"


class Examples:
    """The first `EXAMPLES` raw values of each quarantine reason."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self.values: dict[str, list[str]] = {}

    def add_quarantine(self, quarantine: pa.Table) -> None:
        for reason, raw in zip(quarantine.column("reason").to_pylist(), quarantine.column("raw").to_pylist(),
                               strict=True):  # fmt: skip
            if len(self.values.setdefault(reason, [])) < EXAMPLES:
                self.values[reason].append(self._value(reason, raw))

    def add_rejects(self, rejects: list[tuple[int, str, str]]) -> None:
        for _, reason, raw in rejects:
            if len(self.values.setdefault(reason, [])) < EXAMPLES:
                self.values[reason].append(_cut(raw))

    def _value(self, reason: str, raw: str | None) -> str:
        column = next((c for prefix, c in _COLUMN.items() if reason.startswith(prefix)), None)
        try:
            row = json.loads(raw or "{}")
        except ValueError:
            return _cut(raw or "")
        if column is not None:
            source = self.mapping.get(column, column)
            if isinstance(row, dict) and source in row:
                return _cut(str(row[source]))
        return _cut(json.dumps(row, ensure_ascii=False))


def _cut(text: str) -> str:
    return text if len(text) <= _EXAMPLE_CHARS else text[:_EXAMPLE_CHARS] + "..."


def problem(rows_in: int, rows_out: int, reasons: Counter[str], examples: Examples) -> str | None:
    """One sentence when nothing was kept or one reason quarantined more than half of the rows, else None."""
    if rows_in == 0:
        return "the file holds no rows (a header at most): nothing to ingest; check that the export has data"
    if not reasons:
        return None
    reason, n = reasons.most_common(1)[0]
    if rows_out > 0 and n * 2 <= rows_in:
        return None
    shown = ", ".join(repr(v) for v in examples.values.get(reason, []))
    lead = f"no row was kept: {n:,} of {rows_in:,}" if rows_out == 0 else f"{n:,} of {rows_in:,} rows"
    return f"{lead} quarantined as {reason!r} (e.g. {shown}); {hint(reason)}"
