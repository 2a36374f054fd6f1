"""Load eval rows from JSON, JSONL, CSV or TSV files in whatever encoding they were saved in.

Chinese test sets often come out of Excel or WPS as GBK/GB18030 CSV, or as UTF-8 with a byte-order
mark; decoding those as plain UTF-8 is how garbled questions end up in reports. The bytes are
therefore decoded in a fixed order — a byte-order mark first, then strict UTF-8, then strict
GB18030 (a superset of GBK and GB2312), then charset-normalizer's best guess — and the encoding that
worked is recorded on the `Dataset`.

PromptLayer's dataset CSV shape (used by `import_promptlayer_csv` / `export_promptlayer_csv`):
PromptLayer datasets are tables whose header row holds the prompt template's input variable names,
one column per variable, filled into `{{variable}}` placeholders when an evaluation runs; the
reference answer is an ordinary column that an evaluation step compares against. Our mapping:

- every template variable -> a column of the same name, values as plain text (lists and objects as
  JSON text);
- the expected answer -> a column named `expected_output` (on import, `expected`, `ground_truth`
  and `target` are accepted too, and renamed to `expected_output`);
- a `metadata` column, if present, holds a JSON object per row; on import its keys become
  `metadata.<key>` columns so they can be used in templates and reports;
- files are written as UTF-8 with a byte-order mark, so Excel shows Chinese correctly.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from evals.errors import EvalError
from tunepilot.core import tables
from tunepilot.core.text_encoding import UndecodableText, decode_text

# Names looked for (in order) when the user does not say which column holds what.
INPUT_COLUMN_CANDIDATES = ("input", "question", "prompt", "instruction", "query", "text", "问题", "输入")
EXPECTED_COLUMN_CANDIDATES = (
    "expected", "expected_output", "answer", "output", "response", "target", "label", "ground_truth",
    "reference", "completion", "答案", "输出",
)
PROMPTLAYER_EXPECTED_COLUMN = "expected_output"
_PROMPTLAYER_EXPECTED_ALIASES = ("expected", "ground_truth", "target")
# Keys under which a JSON object commonly keeps its list of rows.
_ROW_LIST_KEYS = ("rows", "data", "examples", "items", "records", "dataset", "test", "samples")


@dataclass
class Dataset:
    """Rows as dicts (column -> value), the columns in file order, and the encoding that decoded the file."""

    rows: list[dict]
    columns: list[str]
    encoding: str
    path: str = ""
    format: str = ""
    skipped_empty_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


# ---------------------------------------------------------------- decoding

def decode_bytes(data: bytes) -> tuple[str, str]:
    """Bytes -> (text, encoding name) with the shared policy; never returns mojibake silently."""
    try:
        return decode_text(data)
    except UndecodableText as exc:
        raise EvalError(f"Cannot read the file as text ({exc}); save it as UTF-8 and retry.") from None


# ---------------------------------------------------------------- parsing

def load_dataset(path: str | Path, format: str = "auto") -> Dataset:
    """Read a dataset file; `format` is auto (from the extension, else sniffed), json, jsonl, csv or tsv.

    Parsing is the shared table reader's (tunepilot.core.tables); the first row it could not read
    becomes an EvalError that says how to fix the file.
    """
    file = Path(path).expanduser()
    if not file.exists():
        raise EvalError(f"Dataset file {file} does not exist; check the path.")
    if file.is_dir():
        raise EvalError(f"{file} is a folder; pass a JSON, JSONL, CSV or TSV file.")
    data = file.read_bytes()
    if not data.strip():
        raise EvalError(f"Dataset file {file} is empty; add rows (JSON, JSONL, CSV or TSV).")
    text, encoding = decode_bytes(data)
    if format == "auto":
        fmt = tables.format_from_suffix(file) or tables.sniff_format(text)
        if fmt is None:
            raise EvalError(f"{file} is neither JSON, JSONL nor CSV/TSV; convert it to one of those formats.")
    elif format in tables.FORMATS:
        fmt = format
    else:
        raise EvalError(f"Unknown dataset format {format!r}; use json, jsonl, csv or tsv.")
    try:
        table = tables.parse_table(text, fmt)
    except tables.TableError as exc:
        raise EvalError(f"{file} {exc}; quote values that contain the delimiter or line breaks.") from None
    rows = _csv_rows(table, file) if table.format in ("csv", "tsv") else _json_rows(table, file)
    kept = [r for r in rows if not _is_empty_row(r)]
    skipped = len(rows) - len(kept)
    if not kept:
        raise EvalError(f"Dataset {file} has no rows with values; add at least one row.")
    dataset = Dataset(rows=kept, columns=_columns_of(kept), encoding=encoding, path=str(file), format=fmt,
                      skipped_empty_rows=skipped)
    if skipped:
        dataset.notes.append(f"skipped {skipped} empty row(s)")
    return dataset


def _json_rows(table: tables.Table, file: Path) -> list[dict]:
    if table.single_object:
        items = _rows_from_object(table.rows[0].data, file)
        return [_as_row(item, i + 1, file) for i, item in enumerate(items)]
    problem = table.first_problem
    if problem is not None:
        raise EvalError(_json_problem(problem, table.format, file))
    return [_flatten_chat(row.data) for row in table.rows]


def _json_problem(problem: tables.RowProblem, kind: str, file: Path) -> str:
    if problem.kind == "not_table":
        return f"{file} holds a JSON {problem.found}; expected an array of row objects."
    if problem.kind == "not_object":
        return _not_an_object(file, problem.index if kind == "json" else problem.line, str(problem.found))
    if kind == "jsonl":
        return f"{file} line {problem.line} is not valid JSON ({problem.detail}); each line must be one JSON object."
    where = f"line {problem.line}, column {problem.column}" if problem.column is not None else f"line {problem.line}"
    return f"{file} is not valid JSON ({where}: {problem.detail}); fix the file or save it as CSV."


def _rows_from_object(data: dict, file: Path) -> list:
    for key in _ROW_LIST_KEYS:
        if isinstance(data.get(key), list):
            return data[key]
    lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(lists) == 1:
        return data[lists[0]]
    if not lists and all(not isinstance(v, (list, dict)) for v in data.values()):
        return [data]  # a single row written as one object
    keys = ", ".join(data) or "(none)"
    raise EvalError(f"{file} is a JSON object but no single key holds the list of rows (keys: {keys}); "
                    f"put the rows under \"rows\" or make the file an array.")


def _as_row(item, number: int, file: Path) -> dict:
    if not isinstance(item, dict):
        raise EvalError(_not_an_object(file, number, type(item).__name__))
    return _flatten_chat(item)


def _not_an_object(file: Path, number: int | None, type_name: str) -> str:
    return f"{file} row {number} is a JSON {type_name}, not an object; write each row as {{\"column\": value, ...}}."


def _flatten_chat(row: dict) -> dict:
    """Rows in chat format ({"messages": [...]}, as used for training) get input/expected/system columns."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return row
    out = dict(row)
    turns = list(messages)
    last = turns[-1]
    if last.get("role") == "assistant" and last.get("tool_calls") and "expected_tool_call" not in out:
        # A held-out tool-calling row in the training format: its (first) call is what the model should make,
        # scored by `tool_call` (evals.tools); a malformed call is named when the run is prepared.
        calls = last["tool_calls"]
        first = calls[0] if isinstance(calls, list) and calls and isinstance(calls[0], dict) else {}
        out["expected_tool_call"] = first.get("function", first)
        turns.pop()
    elif last.get("role") == "assistant" and "expected" not in out:
        out["expected"] = str(turns.pop().get("content", ""))
    users = [m for m in turns if m.get("role") == "user"]
    if users and "input" not in out:
        out["input"] = str(users[-1].get("content", ""))
    systems = [m for m in turns if m.get("role") == "system"]
    if systems and "system" not in out:
        out["system"] = str(systems[0].get("content", ""))
    return out


def _csv_rows(table: tables.Table, file: Path) -> list[dict]:
    header = table.columns
    if header is None:
        raise EvalError(f"{file} has no header row; the first line must name the columns.")
    if not any(header):
        raise EvalError(f"{file} has an empty header row; the first line must name the columns.")
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise EvalError(f"{file} repeats column name(s) {', '.join(dupes)}; give every column a unique name.")
    problem = table.first_problem
    if problem is not None:  # the reader's only CSV row problem: more cells than the header names
        raise EvalError(f"{file} line {problem.line} has {problem.found} fields but the header names {problem.expected}; "
                        "quote values that contain the delimiter.")
    return [row.data for row in table.rows]


def _is_empty_row(row: dict) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in row.values())


def _columns_of(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


# ---------------------------------------------------------------- column helpers

def guess_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first candidate present (case-insensitively), or None."""
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def require_columns(dataset: Dataset, needed: dict[str, str]) -> None:
    """Raise one error naming every missing column (`needed`: column -> what it is for) and the columns found."""
    missing = [f"{col!r} ({why})" for col, why in needed.items() if col not in dataset.columns]
    if missing:
        found = ", ".join(repr(c) for c in dataset.columns)
        raise EvalError(f"Dataset {dataset.path} has no column {', '.join(missing)}; columns found: {found}. "
                        "Pick existing columns with --input-column/--expected-column or the config file.")


def cell_text(value) -> str:
    """A cell as text: strings as-is, numbers as written, lists/objects as JSON (Chinese kept readable)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------- PromptLayer CSV

def import_promptlayer_csv(path: str | Path) -> Dataset:
    """Read a PromptLayer dataset CSV (see the module docstring for the column mapping)."""
    dataset = load_dataset(path, format="csv")
    rows = []
    for row in dataset.rows:
        out = {}
        for key, value in row.items():
            if key in _PROMPTLAYER_EXPECTED_ALIASES and PROMPTLAYER_EXPECTED_COLUMN not in row:
                out[PROMPTLAYER_EXPECTED_COLUMN] = value
            elif key == "metadata" and isinstance(value, str) and value.strip().startswith("{"):
                try:
                    meta = json.loads(value)
                except json.JSONDecodeError:
                    out[key] = value
                    continue
                for mk, mv in meta.items():
                    out[f"metadata.{mk}"] = cell_text(mv)
            else:
                out[key] = value
        rows.append(out)
    dataset.rows = rows
    dataset.columns = _columns_of(rows)
    dataset.format = "promptlayer-csv"
    return dataset


def export_promptlayer_csv(dataset: Dataset, out: str | Path, variables: list[str] | None = None,
                           expected_column: str | None = None) -> Path:
    """Write `dataset` as a PromptLayer dataset CSV: variable columns + `expected_output` (UTF-8 with BOM)."""
    expected_column = expected_column or guess_column(dataset.columns, EXPECTED_COLUMN_CANDIDATES)
    if expected_column is not None and expected_column not in dataset.columns:
        require_columns(dataset, {expected_column: "expected answer"})
    variables = variables or [c for c in dataset.columns if c != expected_column and c != "messages"]
    require_columns(dataset, {v: "template variable" for v in variables})
    header = list(variables) + ([PROMPTLAYER_EXPECTED_COLUMN] if expected_column else [])
    target = Path(out).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in dataset.rows:
            values = [cell_text(row.get(v)) for v in variables]
            if expected_column:
                values.append(cell_text(row.get(expected_column)))
            writer.writerow(values)
    return target
