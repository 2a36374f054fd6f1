"""Rows of a table file: JSON (an array of objects, or one object), JSON Lines, CSV and TSV.

The one reader behind training data (`trainer.data.formats`), eval sets (`evals.datasets`) and the
dataset-format rule (`trainer.planning.rules`), so a file that trains also evaluates:

- callers decode the bytes with the shared policy (`tunepilot.core.text_encoding.decode_text`)
  and word their own errors for it, then hand the text here;
- every row keeps the 1-based line it starts on;
- a row that cannot be read becomes a `Row` with a `RowProblem` instead of an exception, so a
  caller can collect every bad row (the training data check) or stop at the first (eval sets), and
  word the error for its own users inside its own error class (`RowProblem.message` is the plain
  wording). `TableError` is raised only for a file that is not a table at all.

JSON vs JSON Lines is decided by content as well as by name: a `.jsonl` file that holds an array
is read as JSON, and a `.json` file with one object per line as JSON Lines.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("json", "jsonl", "csv", "tsv")
SUFFIX_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}
_SNIFF_DELIMITERS = ",\t;|"


class TableError(ValueError):
    """The text is not a table in the format asked for (unknown format, broken CSV quoting)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class RowProblem:
    """Why one row could not be read.

    kind: `invalid_json` (detail = the parser's message, column = where), `not_object` (found = the
    JSON type), `not_table` (the whole document is a JSON scalar or string), `extra_values` (a CSV
    row with more non-empty cells than the header: found = cells, expected = header columns); a
    caller's own check of a cell may add its kind with the wording in `detail`.
    `stops_reading` is True when rows after this one could not be located (a syntax error inside a
    JSON array).
    """

    kind: str
    line: int
    detail: str = ""
    column: int | None = None
    found: str | int | None = None
    expected: int | None = None
    index: int | None = None  # 1-based position in a JSON array
    stops_reading: bool = False

    @property
    def message(self) -> str:
        if self.kind == "invalid_json":
            where = f" at column {self.column}" if self.column is not None else ""
            tail = "; rows after it were not read" if self.stops_reading and self.column is not None else ""
            return f"invalid JSON ({self.detail}{where}){tail}"
        if self.kind == "not_object":
            return f"expected a JSON object, got {self.found}"
        if self.kind == "not_table":
            return "expected a JSON array of objects"
        if self.kind == "extra_values":
            return f"{int(self.found or 0) - int(self.expected or 0)} more value(s) than the {self.expected} header columns"
        return self.detail or self.kind


@dataclass
class Row:
    line: int  # 1-based line where the row starts (CSV: counting the header line)
    data: dict | None
    problem: RowProblem | None = None

    @property
    def error(self) -> str | None:
        return self.problem.message if self.problem else None


@dataclass
class Table:
    format: str  # how the text was read: json | jsonl | csv | tsv
    rows: list[Row] = field(default_factory=list)
    columns: list[str] | None = None  # CSV/TSV header, stripped (None: no header line at all)
    single_object: bool = False  # JSON: the document is one object rather than an array of rows

    @property
    def first_problem(self) -> RowProblem | None:
        return next((r.problem for r in self.rows if r.problem is not None), None)


# ---------------------------------------------------------------- which format

def format_from_suffix(path: str | Path) -> str | None:
    return SUFFIX_FORMATS.get(Path(path).suffix.lower())


def sniff_format(text: str) -> str | None:
    """The format of text whose file name does not say: JSON / JSON Lines by the first character, else CSV."""
    stripped = text.lstrip()
    head = stripped[:1]
    if head == "[":
        return "json"
    if head == "{":
        try:
            json.loads(stripped.splitlines()[0])
        except json.JSONDecodeError:
            return "json"
        return "jsonl" if len(text.strip().splitlines()) > 1 else "json"
    try:
        csv.Sniffer().sniff(text[:4096], delimiters=_SNIFF_DELIMITERS)
    except csv.Error:
        return None
    return "csv"


def _json_kind(text: str) -> str:
    """json or jsonl for text said to be JSON: an array or one document is JSON; several objects, one per line, are JSON Lines."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    try:
        json.loads(text)
        return "json"
    except json.JSONDecodeError:
        pass
    # Not one document: JSON Lines when the first line is an object on its own, else a broken JSON file.
    first = stripped.splitlines()[0] if stripped else ""
    try:
        return "jsonl" if isinstance(json.loads(first), dict) else "json"
    except json.JSONDecodeError:
        return "json"


# ---------------------------------------------------------------- parsers

def parse_jsonl(text: str) -> list[Row]:
    """One JSON object per non-blank line."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(Row(number, None, RowProblem("invalid_json", number, exc.msg, exc.colno)))
            continue
        if not isinstance(data, dict):
            rows.append(Row(number, None, RowProblem("not_object", number, found=type(data).__name__)))
            continue
        rows.append(Row(number, data))
    return rows


def parse_json(text: str) -> tuple[list[Row], bool]:
    """(rows, single_object): an array walked element by element so each row keeps its line, or one object as one row."""
    stripped = text.lstrip()
    if not stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return [Row(exc.lineno, None, RowProblem("invalid_json", exc.lineno, exc.msg, exc.colno))], False
        if isinstance(data, dict):
            return [Row(1, data)], True
        return [Row(1, None, RowProblem("not_table", 1, found=type(data).__name__))], False
    decoder = json.JSONDecoder()
    rows: list[Row] = []
    pos = text.index("[") + 1
    index = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            line = text.count("\n", 0, pos) + 1
            rows.append(Row(line, None, RowProblem("invalid_json", line, "the array is not closed with ']'",
                                                   stops_reading=True)))
            return rows, False
        if text[pos] == "]":
            return rows, False
        line = text.count("\n", 0, pos) + 1
        index += 1
        try:
            data, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # After a syntax error the rest of the array cannot be located reliably.
            rows.append(Row(exc.lineno, None, RowProblem("invalid_json", exc.lineno, exc.msg, exc.colno,
                                                         index=index, stops_reading=True)))
            return rows, False
        if isinstance(data, dict):
            rows.append(Row(line, data))
        else:
            rows.append(Row(line, None, RowProblem("not_object", line, found=type(data).__name__, index=index)))


def sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=_SNIFF_DELIMITERS).delimiter
    except csv.Error:
        return ","


def parse_csv(text: str, delimiter: str | None = ",", missing: str | None = "") -> tuple[list[str] | None, list[Row]]:
    """(header, rows) of delimited text; `delimiter=None` sniffs it, `missing` fills cells a short row lacks.

    Header names are stripped and columns without a name are dropped; blank lines are skipped.
    """
    if delimiter is None:
        delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return None, []
        columns = [h.strip() for h in header]
        rows: list[Row] = []
        start = reader.line_num + 1
        for values in reader:
            line, start = start, reader.line_num + 1  # a quoted newline makes a record span lines
            if not values:
                continue
            if len(values) > len(columns) and any(v.strip() for v in values[len(columns):]):
                rows.append(Row(line, None, RowProblem("extra_values", line, found=len(values), expected=len(columns))))
                continue
            data = {h: (values[i] if i < len(values) else missing) for i, h in enumerate(columns) if h}
            rows.append(Row(line, data))
    except csv.Error as exc:
        raise TableError(f"line {reader.line_num}: {exc}", reader.line_num) from None
    return columns, rows


# ---------------------------------------------------------------- whole tables

def parse_table(text: str, fmt: str, *, delimiter: str | None = None, missing: str | None = "") -> Table:
    """Rows of `text` in `fmt` (json, jsonl, csv or tsv); JSON vs JSON Lines is corrected by content.

    For csv, `delimiter=None` sniffs it (`,` tab `;` `|`); tsv always uses a tab.
    """
    if fmt in ("json", "jsonl"):
        kind = _json_kind(text) if fmt == "json" else ("json" if text.lstrip().startswith("[") else "jsonl")
        if kind == "jsonl":
            return Table("jsonl", parse_jsonl(text))
        rows, single = parse_json(text)
        return Table("json", rows, single_object=single)
    if fmt in ("csv", "tsv"):
        columns, rows = parse_csv(text, "\t" if fmt == "tsv" else delimiter, missing)
        return Table(fmt, rows, columns)
    raise TableError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
