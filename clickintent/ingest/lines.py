"""Physical lines of a text file, and CSV records made of them, each knowing the lines it came from.

Ingest counts what a text file holds apart from the parser: `count_lines` counts line terminators in
raw bytes (LF, CRLF, or CR alone, whichever the file uses), and every reader here reports how many of
those lines it accounted for (the header, blank lines, and each record's lines), so a parser that
loses lines is caught (issue 17: one unterminated quote once swallowed the 90 rows after it).

`csv_records` splits a file into CSV records. A record is one line unless a quoted field runs past the
end of a line, then it continues on the next lines, up to `MAX_RECORD_LINES` lines and
`MAX_RECORD_BYTES` bytes. A quote that is still open at that bound or at the end of the file is not
allowed to swallow what follows: its first line becomes a rejected record ("unterminated quote"), and
reading goes on with the line after it. Left out: quote characters other than `"`, and escapes other
than a doubled `""`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

MAX_RECORD_LINES = 100  # a quoted value may span this many lines; beyond, its opening quote is unterminated
MAX_RECORD_BYTES = 8 << 20  # the longest record (and line) read; longer lines are rejected
_CHUNK = 1 << 22


def terminator(path: Path) -> bytes:
    """The file's line terminator: LF (CRLF files too; the CR is stripped) unless only CRs appear."""
    with path.open("rb") as f:
        head = f.read(1 << 20)
    return b"\r" if b"\n" not in head and b"\r" in head else b"\n"


def count_lines(path: Path) -> int:
    """Physical lines in the file, from the raw bytes alone: terminators, plus a last line without one."""
    end = terminator(path)
    n, last = 0, b""
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            n += chunk.count(end)
            last = chunk
    return n + (1 if last and not last.endswith(end) else 0)


def physical_lines(path: Path) -> Iterator[bytes]:
    """Every line of the file without its terminator (a CRLF's CR removed), blank lines included."""
    end = terminator(path)
    with path.open("rb") as f:
        if end == b"\n":
            for line in f:
                yield line[:-1].removesuffix(b"\r") if line.endswith(b"\n") else line.removesuffix(b"\r")
            return
        rest = b""
        while chunk := f.read(_CHUNK):
            parts = (rest + chunk).split(end)
            rest = parts.pop()
            yield from parts
        if rest:
            yield rest


class Record(NamedTuple):  # a tuple: one is made per line, so it must be cheap
    line: int  # 1-based line of the file where the record starts
    n_lines: int  # physical lines it takes
    text: str | None  # the record's text (lines joined by "\n"), None when rejected or blank
    problem: str | None = None  # why it was rejected
    raw: str = ""  # the rejected text, decoded leniently, for the quarantine


def ends_in_quotes(text: str, delim: str, inside: bool = False) -> bool:
    """Whether a CSV record is still inside a quoted field at the end of `text`.

    `inside`: whether it already was at the start of `text`. A quote opens a quoted field only at the
    start of a field; inside one, `""` is an escaped quote and a lone `"` closes it (the `csv` module's
    rules, and DuckDB's).
    """
    i = 0
    while (j := text.find('"', i)) >= 0:
        if inside:
            if text.startswith('"', j + 1):
                i = j + 2
                continue
            inside = False
        elif j == 0 or text[j - 1] == delim:
            inside = True
        i = j + 1
    return inside


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def csv_records(lines: Iterator[bytes], delim: str, first_line: int = 1) -> Iterator[Record]:
    """CSV records of `lines` (the file's lines after the header; `first_line` is the first one's number).

    Blank lines are skipped but accounted for: they come back as records of one line with no text and no
    problem, so the lines of all records always add up to the lines read.
    """
    pending: deque[tuple[int, bytes]] = deque()  # lines read ahead and given back after a broken quote
    source = enumerate(lines, start=first_line)

    def next_line() -> tuple[int, bytes] | None:
        if pending:
            return pending.popleft()
        return next(source, None)

    while (item := next_line()) is not None:
        no, raw = item
        if not raw:
            yield Record(no, 1, None)
            continue
        if len(raw) > MAX_RECORD_BYTES:
            yield Record(no, 1, None, "line longer than the reader's limit", raw[:4096].decode("utf-8", "replace"))
            continue
        text = _decode(raw)
        if text is None:
            yield Record(no, 1, None, "invalid UTF-8", raw.decode("utf-8", "replace"))
            continue
        if '"' not in text or not ends_in_quotes(text, delim):
            yield Record(no, 1, text)
            continue
        # A quoted value goes on past this line: gather lines until it closes, within the bounds.
        parts, taken, size, closed = [text], [item], len(raw), False
        while not closed:
            nxt = next_line()
            if nxt is None or len(taken) >= MAX_RECORD_LINES or size + len(nxt[1]) > MAX_RECORD_BYTES:
                if nxt is not None:
                    pending.appendleft(nxt)
                break
            taken.append(nxt)
            size += len(nxt[1]) + 1
            parts.append(nxt[1].decode("utf-8", "replace"))
            closed = not ends_in_quotes(parts[-1], delim, inside=True)
        if closed:
            joined = "\n".join(parts)
            if any(_decode(raw) is None for _, raw in taken[1:]):
                yield Record(no, len(taken), None, "invalid UTF-8", joined)
            else:
                yield Record(no, len(taken), joined)
            continue
        # Never closed: the first line alone is the bad record; the lines after it are read again.
        pending.extendleft(reversed(taken[1:]))
        yield Record(no, 1, None, "unterminated quote", text)
