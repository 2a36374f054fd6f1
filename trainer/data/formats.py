"""Training data: read JSON / JSONL / CSV in UTF-8, UTF-8-BOM or GBK/GB18030, and normalise every row.

Accepted row formats (auto-detected from the keys of the rows, or forced with `fmt`):

- chat: ``{"messages": [{"role": "system|user|assistant", "content": "..."}]}`` (OpenAI's fine-tuning format)
- alpaca: ``{"instruction", "input"?, "output", "system"?, "history"?: [[question, answer], ...]}``
- sharegpt: ``{"conversations": [{"from": "human|gpt|system", "value": "..."}], "system"?}``
- prompt_completion: ``{"prompt", "completion"}`` (also eval-set columns ``{"input", "expected"}``)
- text: ``{"text"}`` (plain language-model data; every token is trained on)

Every chat-like format becomes ``{"messages": [...]}``; text rows stay ``{"text": ...}``. Rows that cannot
be used are reported with their line number, so a user can fix the file instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tunepilot.core.errors import UserError
from tunepilot.core.tables import (
    Row,
    RowProblem,
    TableError,
    format_from_suffix,
    parse_table,
)
from tunepilot.core.text_encoding import UndecodableText, decode_text

FORMATS = ("chat", "alpaca", "sharegpt", "prompt_completion", "text")

# Which keys identify a format, in the order auto-detection tries them.
_FORMAT_KEYS = (
    ("chat", {"messages"}),
    ("sharegpt", {"conversations"}),
    ("alpaca", {"instruction", "output"}),
    ("prompt_completion", {"prompt", "completion"}),
    ("prompt_completion", {"input", "expected"}),  # eval-set columns, read as prompt/completion pairs
    ("text", {"text"}),
)
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "model": "assistant", "system": "system", "bing": "assistant", "chatgpt": "assistant"}
_CHAT_ROLES = {"system", "user", "assistant"}


class DataError(UserError, ValueError):
    """The dataset cannot be used as it is; `problems` lists every `{"line", "message"}` found."""

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass
class LoadedData:
    """Everything read from one file: the usable examples, where they came from, and the bad rows."""

    path: Path
    encoding: str
    file_format: str  # json | jsonl | csv
    row_format: str  # chat | alpaca | sharegpt | prompt_completion | text
    examples: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # line of each example, same order
    errors: list[dict] = field(default_factory=list)  # {"line", "message"}
    total_rows: int = 0


# ---------------------------------------------------------------- reading bytes and rows

def read_text(path: str | Path) -> tuple[str, str]:
    """Decode a data file with the shared encoding policy (tunepilot.core.text_encoding)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Dataset file not found: {p}; check dataset.path.")
    if p.is_dir():
        raise DataError(f"{p} is a folder; dataset.path must be a .json, .jsonl or .csv file.")
    try:
        return decode_text(p.read_bytes())
    except UndecodableText as exc:
        raise DataError(f"{p}: {exc}; re-save it as UTF-8 text.") from None


def _file_format(path: Path) -> str:
    kind = format_from_suffix(path)
    if kind in ("json", "jsonl", "csv"):
        return kind
    raise DataError(f"{path.name}: unsupported file type {path.suffix.lower() or '(none)'}; use .json, .jsonl or .csv.")


def read_rows(path: str | Path) -> tuple[list[Row], str, str]:
    """All rows of a file with their line numbers (bad lines carry an error); returns (rows, encoding, file_format).

    The shared table reader (tunepilot.core.tables) parses; a `.json` file of JSON Lines and a `.jsonl`
    file holding an array are read by their content, and the returned file_format says which.
    """
    p = Path(path)
    text, encoding = read_text(p)
    kind = _file_format(p)
    try:
        # Training CSVs are comma-separated; a cell a short row lacks is missing (None), not empty.
        table = parse_table(text, kind, delimiter=",", missing=None)
    except TableError as exc:
        raise DataError(f"{p.name} {exc}; fix the file's quoting.") from None
    rows = _json_cells(table.rows) if table.format == "csv" else table.rows
    return rows, encoding, table.format


def _json_cells(rows: list[Row]) -> list[Row]:
    """Structured columns (messages, conversations, history) hold JSON text inside a CSV cell."""
    out = []
    for row in rows:
        data = row.data
        for key in ("messages", "conversations", "history"):
            value = data.get(key) if data is not None else None
            if isinstance(value, str) and value.strip().startswith("["):
                try:
                    data = {**data, key: json.loads(value)}
                except json.JSONDecodeError as exc:
                    row = Row(row.line, None, RowProblem("cell_json", row.line, f"column {key!r} is not valid JSON ({exc.msg})"))
                    break
        out.append(row if row.data is None else Row(row.line, data))
    return out


# ---------------------------------------------------------------- format detection and normalisation

def detect_format(rows: list[Row]) -> str:
    """The format most of the first readable rows match; raises DataError naming the keys it saw."""
    votes: dict[str, int] = {}
    seen_keys: set[str] = set()
    for row in rows[:50]:
        if row.data is None:
            continue
        keys = set(row.data)
        seen_keys |= keys
        for name, needed in _FORMAT_KEYS:
            if needed <= keys:
                votes[name] = votes.get(name, 0) + 1
                break
    if not votes:
        shown = ", ".join(sorted(seen_keys)) or "none"
        raise DataError(
            f"Cannot tell the dataset format from its fields ({shown}). Use chat `messages`, alpaca "
            "`instruction`/`output`, sharegpt `conversations`, `prompt`/`completion`, or `text`, "
            "or set dataset.format."
        )
    return max(votes, key=votes.get)


def normalise(data: dict, fmt: str) -> dict:
    """One row -> `{"messages": [...]}` (or `{"text": ...}`); raises ValueError with what is wrong."""
    if fmt == "chat":
        messages = _chat_messages(data.get("messages"))
    elif fmt == "sharegpt":
        messages = _sharegpt_messages(data)
    elif fmt == "alpaca":
        messages = _alpaca_messages(data)
    elif fmt == "prompt_completion":
        if "prompt" not in data and "input" in data and "expected" in data:
            prompt, completion = _required_text(data, "input"), _required_text(data, "expected")
        else:
            prompt, completion = _required_text(data, "prompt"), _required_text(data, "completion")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    elif fmt == "text":
        return {"text": _required_text(data, "text")}
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    check_role_order(messages)
    return {"messages": messages}


def _required_text(data: dict, key: str) -> str:
    if key not in data or data[key] is None:
        raise ValueError(f"missing field {key!r}")
    value = data[key]
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise ValueError(f"field {key!r} must be text, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"field {key!r} is empty")
    return value


def _chat_messages(messages) -> list[dict]:
    if messages is None:
        raise ValueError("missing field 'messages'")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}] must be an object with role and content")
        role = m.get("role")
        if role not in _CHAT_ROLES:
            raise ValueError(f"messages[{i}].role is {role!r}; use system, user or assistant")
        content = m.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"messages[{i}].content is missing or empty")
        out.append({"role": role, "content": content})
    return out


def _sharegpt_messages(data: dict) -> list[dict]:
    turns = data.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise ValueError("'conversations' must be a non-empty list")
    messages = []
    system = data.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise ValueError(f"conversations[{i}] must be an object with from and value")
        speaker = str(t.get("from", "")).lower()
        if speaker not in _SHAREGPT_ROLES:
            raise ValueError(f"conversations[{i}].from is {t.get('from')!r}; use human, gpt or system")
        value = t.get("value")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"conversations[{i}].value is missing or empty")
        messages.append({"role": _SHAREGPT_ROLES[speaker], "content": value})
    return messages


def _alpaca_messages(data: dict) -> list[dict]:
    instruction = _required_text(data, "instruction")
    output = _required_text(data, "output")
    extra = data.get("input")
    prompt = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    messages = []
    system = data.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    history = data.get("history") or []
    if not isinstance(history, list):
        raise ValueError("'history' must be a list of [question, answer] pairs")
    for i, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) and x.strip() for x in pair)):
            raise ValueError(f"history[{i}] must be a [question, answer] pair of non-empty texts")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return messages


def check_role_order(messages: list[dict]) -> None:
    """An optional system message, then user/assistant turns alternating, ending with the assistant."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if any(m["role"] == "system" for m in body):
        raise ValueError("a system message may only come first")
    if not body:
        raise ValueError("no user or assistant turns")
    for i, m in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise ValueError(f"role order: turn {i + 1} is {m['role']!r} but {expected!r} was expected (user and assistant alternate)")
    if body[-1]["role"] != "assistant":
        raise ValueError("the last turn must be the assistant's (there is nothing to learn otherwise)")


# ---------------------------------------------------------------- public entry points

def read_dataset(path: str | Path, fmt: str = "auto") -> LoadedData:
    """Read and normalise a file, keeping bad rows as errors instead of raising (for checks and --skip-bad-rows)."""
    p = Path(path).expanduser()
    rows, encoding, kind = read_rows(p)
    if fmt not in ("auto", *FORMATS):
        raise DataError(f"Unknown dataset format {fmt!r}; use auto or one of {', '.join(FORMATS)}.")
    if not any(r.data is not None for r in rows):
        if rows:
            first = rows[0]
            raise DataError(f"{p.name} line {first.line}: {first.error}", [{"line": r.line, "message": r.error} for r in rows])
        raise DataError(f"{p} has no rows; add training examples to it.")
    row_format = detect_format(rows) if fmt == "auto" else fmt
    loaded = LoadedData(path=p, encoding=encoding, file_format=kind, row_format=row_format, total_rows=len(rows))
    for row in rows:
        if row.data is None:
            loaded.errors.append({"line": row.line, "message": row.error})
            continue
        try:
            loaded.examples.append(normalise(row.data, row_format))
            loaded.lines.append(row.line)
        except ValueError as exc:
            loaded.errors.append({"line": row.line, "message": str(exc)})
    return loaded


def format_problems(path: Path, problems: list[dict], limit: int = 5) -> str:
    shown = "; ".join(f"line {p['line']}: {p['message']}" for p in problems[:limit])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return f"{path.name} has {len(problems)} bad row(s): {shown}{more}"


def load_examples(path: str | Path, fmt: str = "auto", skip_bad_rows: bool = False) -> list[dict]:
    """Normalised examples of a dataset file; bad rows raise DataError listing them unless `skip_bad_rows`."""
    loaded = read_dataset(path, fmt)
    if loaded.errors and not skip_bad_rows:
        raise DataError(format_problems(loaded.path, loaded.errors) + "; fix them or pass --skip-bad-rows.", loaded.errors)
    if not loaded.examples:
        raise DataError(f"{loaded.path.name} has no usable examples.", loaded.errors)
    return loaded.examples
