"""Training data: read JSON / JSONL / CSV / TXT in UTF-8, UTF-8-BOM or GBK/GB18030, and normalise every row.

Accepted row formats (auto-detected from the keys of the rows, or forced with `fmt`):

- chat: ``{"messages": [{"role": "system|user|assistant|tool", "content": "..."}], "tools"?: [...]}``
  (OpenAI's fine-tuning format, with per-message ``"weight": 0|1`` on assistant turns, assistant
  ``tool_calls`` answered by ``tool`` turns, and the legacy ``functions`` / ``function_call`` / ``function``)
- alpaca: ``{"instruction", "input"?, "output", "system"?, "history"?: [[question, answer], ...]}``
- sharegpt: ``{"conversations": [{"from": "human|gpt|system|function_call|observation", "value": "..."}],
  "system"?, "tools"?}`` (LLaMA-Factory's layout, glaive tool-calling sets included)
- prompt_completion: ``{"prompt", "completion"}`` (also eval-set columns ``{"input", "expected"}``)
- text: ``{"text"}`` rows, or a ``.txt`` file (plain language-model data; every token is trained on)

Preference pairs and KTO rows are recognised by `trainer.data.preference.kind_of_row` (the preference
stages read them); a file has one *kind*: sft, tools, text, preference or kto (`KINDS`).

Rules a reader must know (the docs page knowledge/docs/en/tool-calling.md repeats them):

- content given as a list of parts (``[{"type": "text", "text" | "value": ...}]``) is joined with a newline;
  any other part (image, audio, file) is refused by name, as these are text-only models.
- ``"weight": 0`` marks an assistant turn as context only (it gets no loss); only 0 and 1 are accepted.
- tools are kept as ``[{"type": "function", "function": {"name", "description", "parameters"}}]``
  and tool calls as ``{"type": "function", "function": {"name", "arguments": {...}}}`` (arguments
  parsed from JSON text when given as text); a call to a tool the row does not list is an error.
- a ``.txt`` file is split into documents at blank lines: each block of non-empty lines is one example.

Every chat-like format becomes ``{"messages": [...], "tools"?: [...]}``; text rows stay ``{"text": ...}``.
Rows that cannot be used are reported with their line number, so a user can fix the file instead of guessing.
"""

from __future__ import annotations

import json
import re
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
KINDS = ("sft", "tools", "text", "preference", "kto")

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
                   "model": "assistant", "system": "system", "bing": "assistant", "chatgpt": "assistant",
                   "function_call": "function_call", "observation": "tool", "tool": "tool", "function": "tool"}
# Chat rows: OpenAI's roles, plus the tool role names LLaMA-Factory's tags allow in `messages`.
_CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
               "tool": "tool", "function": "tool", "observation": "tool", "function_call": "function_call"}
_MEDIA_KEYS = ("images", "videos", "audios")

# Which training stage (method.stage) reads which kind of file.
STAGES_FOR_KIND = {"sft": ("sft",), "tools": ("sft",), "text": ("sft",), "preference": ("dpo", "orpo"), "kto": ("kto",)}
_KIND_NAMES = {"sft": "a chat (SFT) set", "tools": "a tool-calling chat (SFT) set", "text": "a plain-text set",
               "preference": "a preference set (chosen/rejected pairs)", "kto": "a KTO set (replies labelled true/false)"}
_KIND_LABELS = {"sft": "chat", "tools": "tool-calling chat", "text": "text", "preference": "preference", "kto": "KTO"}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


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
    file_format: str  # json | jsonl | csv | txt
    row_format: str  # chat | alpaca | sharegpt | prompt_completion | text | preference | kto
    examples: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # line of each example, same order
    errors: list[dict] = field(default_factory=list)  # {"line", "message"}
    total_rows: int = 0
    kind: str = "sft"  # sft | tools | text | preference | kto
    warnings: list[str] = field(default_factory=list)
    fields: dict = field(default_factory=dict)  # field of the file -> what it becomes


# ---------------------------------------------------------------- reading bytes and rows

def read_text(path: str | Path) -> tuple[str, str]:
    """Decode a data file with the shared encoding policy (tunepilot.core.text_encoding)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Dataset file not found: {p}; check dataset.path.")
    if p.is_dir():
        raise DataError(f"{p} is a folder; dataset.path must be a .json, .jsonl, .csv or .txt file.")
    try:
        return decode_text(p.read_bytes())
    except UndecodableText as exc:
        raise DataError(f"{p}: {exc}; re-save it as UTF-8 text.") from None


def _file_format(path: Path) -> str:
    if path.suffix.lower() == ".txt":
        return "txt"
    kind = format_from_suffix(path)
    if kind in ("json", "jsonl", "csv"):
        return kind
    raise DataError(f"{path.name}: unsupported file type {path.suffix.lower() or '(none)'}; use .json, .jsonl, .csv or .txt.")


def read_rows(path: str | Path) -> tuple[list[Row], str, str]:
    """All rows of a file with their line numbers (bad lines carry an error); returns (rows, encoding, file_format).

    The shared table reader (tunepilot.core.tables) parses; a `.json` file of JSON Lines and a `.jsonl`
    file holding an array are read by their content, and the returned file_format says which. A `.txt`
    file gives one `{"text"}` row per blank-line-separated block, numbered by the block's first line.
    """
    p = Path(path)
    text, encoding = read_text(p)
    kind = _file_format(p)
    if kind == "txt":
        return text_documents(text), encoding, "txt"
    try:
        # Training CSVs are comma-separated; a cell a short row lacks is missing (None), not empty.
        table = parse_table(text, kind, delimiter=",", missing=None)
    except TableError as exc:
        raise DataError(f"{p.name} {exc}; fix the file's quoting.") from None
    rows = _json_cells(table.rows) if table.format == "csv" else table.rows
    return rows, encoding, table.format


def text_documents(text: str) -> list[Row]:
    """Plain text -> one row per document; documents are separated by one or more blank lines."""
    rows, block, start = [], [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line.rstrip())
        elif block:
            rows.append(Row(start, {"text": "\n".join(block)}))
            block = []
    if block:
        rows.append(Row(start, {"text": "\n".join(block)}))
    return rows


def _json_cells(rows: list[Row]) -> list[Row]:
    """Structured columns (messages, conversations, history, tools) hold JSON text inside a CSV cell."""
    out = []
    for row in rows:
        data = row.data
        for key in ("messages", "conversations", "history", "tools"):
            value = data.get(key) if data is not None else None
            if isinstance(value, str) and value.strip().startswith("["):
                try:
                    data = {**data, key: json.loads(value)}
                except json.JSONDecodeError as exc:
                    row = Row(row.line, None, RowProblem("cell_json", row.line, f"column {key!r} is not valid JSON ({exc.msg})"))
                    break
        out.append(row if row.data is None else Row(row.line, data))
    return out


# ---------------------------------------------------------------- kinds (what a file is for)

# The preference/KTO row reader, `trainer.data.preference`: it owns what such a row looks like
# (`kind_of_row`, `layout_of_row`, `normalise_row`, `FIELD_ROLES`). trainer/data/__init__.py installs it
# here, so this module never imports that one, which reads its turns with this module's chat readers
# (an import in both directions would be a cycle between siblings).
_preference_reader = None


def install_preference_reader(reader) -> None:
    global _preference_reader
    _preference_reader = reader


def _preference():
    if _preference_reader is None:  # only if trainer.data.formats was loaded without its package
        raise RuntimeError("trainer.data did not install its preference reader; import trainer.data first")
    return _preference_reader


def _preference_kind(data: dict) -> str | None:
    return _preference().kind_of_row(data)


def _turns(data: dict) -> list:
    turns = data.get("messages", data.get("conversations"))
    return turns if isinstance(turns, list) else []


def _has_tools(data: dict) -> bool:
    """Whether a chat-like row lists tools or holds tool calls / tool results."""
    for key in ("tools", "functions"):
        value = data.get(key)
        if isinstance(value, str):
            value = value.strip()
            if value and value not in ("[]", "null"):
                return True
        elif value:
            return True
    for t in _turns(data):
        if isinstance(t, dict):
            role = str(t.get("role", t.get("from", ""))).lower()
            if t.get("tool_calls") or t.get("function_call") or role in ("tool", "function", "observation", "function_call"):
                return True
    return False


def row_format_of(data: dict) -> str | None:
    """The chat-like format a row's keys match (chat, sharegpt, ...), or None."""
    keys = set(data)
    for name, needed in _FORMAT_KEYS:
        if needed <= keys:
            return name
    return None


def row_kind(data: dict) -> str | None:
    """sft | tools | text | preference | kto for one parsed row, or None when no format fits."""
    kind = _preference_kind(data)
    if kind:
        return kind
    fmt = row_format_of(data)
    if fmt is None:
        return None
    if fmt == "text":
        return "text"
    return "tools" if _has_tools(data) else "sft"


def _family(kind: str) -> str:
    # Plain chat rows and tool-calling rows train together (a tool set usually has rows without calls).
    return "sft" if kind == "tools" else kind


def detect_kind(rows: list[Row]) -> tuple[str | None, dict[str, list[int]]]:
    """(the file's kind, {kind: lines}) over all readable rows; raises DataError for a mix of kinds."""
    lines: dict[str, list[int]] = {}
    for row in rows:
        if row.data is None:
            continue
        kind = row_kind(row.data)
        if kind:
            lines.setdefault(kind, []).append(row.line)
    families = {_family(k) for k in lines}
    if len(families) > 1:
        parts = [f"{_KIND_LABELS[k]} rows on {_line_list(v)}" for k, v in lines.items()]
        problems = [{"line": line, "message": f"this row is {_KIND_NAMES[k]}"} for k, v in lines.items() for line in v]
        raise DataError(f"Mixed kinds of rows in one file: {'; '.join(parts)}. One training stage reads one kind; "
                        "split them into separate files.", sorted(problems, key=lambda p: p["line"]))
    if not lines:
        return None, lines
    kind = "tools" if "tools" in lines else next(iter(lines))
    return kind, lines


def _line_list(lines: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    more = f" and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def stage_problem(kind: str, stage: str) -> str | None:
    """Why `stage` cannot train a file of `kind` and which stage can, or None when it can."""
    usable = STAGES_FOR_KIND.get(kind, ())
    if not usable or stage in usable:
        return None
    options = " or ".join(f'"{s}"' for s in usable)
    return (f"This is {_KIND_NAMES[kind]}, which method.stage = \"{stage}\" cannot train: use method.stage = {options}"
            + (" (or convert the file)." if kind != "sft" else "."))


# ---------------------------------------------------------------- format detection and normalisation

def detect_format(rows: list[Row]) -> str:
    """The format most of the first readable rows match; raises DataError naming the keys it saw.

    Preference and KTO rows answer "preference" / "kto" (their reader is `trainer.data.preference`).
    """
    votes: dict[str, int] = {}
    seen_keys: set[str] = set()
    for row in rows[:50]:
        if row.data is None:
            continue
        seen_keys |= set(row.data)
        name = _preference_kind(row.data) or row_format_of(row.data)
        if name:
            votes[name] = votes.get(name, 0) + 1
    if not votes:
        shown = ", ".join(sorted(seen_keys)) or "none"
        raise DataError(
            f"Cannot tell the dataset format from its fields ({shown}). Use chat `messages`, alpaca "
            "`instruction`/`output`, sharegpt `conversations`, `prompt`/`completion`, `text`, or preference "
            "`chosen`/`rejected` pairs, or set dataset.format."
        )
    return max(votes, key=votes.get)


def normalise(data: dict, fmt: str) -> dict:
    """One row -> `{"messages": [...], "tools"?: [...]}` (or `{"text": ...}`); raises ValueError with what is wrong."""
    media = [k for k in _MEDIA_KEYS if data.get(k)]
    if media:
        raise ValueError(f"the row has {', '.join(media)}; these models are text-only, so remove them or train "
                         "a vision/audio model with another tool")
    tools_key = "tools" if "tools" in data else "functions"
    tools = _tools(data.get(tools_key), tools_key)
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
    _check_tool_calls(messages, tools)
    return {"messages": messages, "tools": tools} if tools else {"messages": messages}


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


def _text_content(value, where: str, allow_empty: bool = False) -> str:
    """A message's content as text: a string, or a list of text parts joined with newlines."""
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            if isinstance(part, str):
                texts.append(part)
                continue
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text":
                raise ValueError(f"{where}[{j}] is a {kind!r} part; only text parts can be trained (these models "
                                 "are text-only), so remove it or describe it in text")
            text = part.get("text", part.get("value"))
            if not isinstance(text, str):
                raise ValueError(f"{where}[{j}] is a text part without a 'text' (or 'value') string")
            texts.append(text)
        value = "\n".join(texts)
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str) or (not value.strip() and not allow_empty):
        raise ValueError(f"{where} is missing or empty")
    return value


def _weight(m: dict, where: str, role: str) -> int:
    if "weight" not in m:
        return 1
    w = m["weight"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or w not in (0, 1):
        raise ValueError(f"{where}.weight is {w!r}; a weight must be 0 or 1 (0: context only, not trained on)")
    if role != "assistant":
        raise ValueError(f"{where}.weight is set on a {role} turn; only assistant turns carry a weight "
                         "(other turns are never trained on)")
    return int(w)


def _chat_messages(messages) -> list[dict]:
    if messages is None:
        raise ValueError("missing field 'messages'")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ValueError(f"{where} must be an object with role and content")
        role = _CHAT_ROLES.get(m.get("role")) if isinstance(m.get("role"), str) else None
        if role is None:
            raise ValueError(f"{where}.role is {m.get('role')!r}; use system, user, assistant or tool")
        if role == "function_call":  # LLaMA-Factory's tag: the content is the call's JSON
            out.append(_assistant_call(_parse_calls(_text_content(m.get("content"), f"{where}.content"), where),
                                       _weight(m, where, "assistant")))
            continue
        calls = None
        if role == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            raw = m.get("tool_calls") if m.get("tool_calls") else [{"type": "function", "function": m["function_call"]}]
            calls = _tool_calls(raw, where)
        content = _text_content(m.get("content"), f"{where}.content", allow_empty=calls is not None)
        msg: dict = {"role": role, "content": content}
        if calls:
            msg["tool_calls"] = calls
        if role == "tool":
            for key in ("tool_call_id", "name"):
                if isinstance(m.get(key), str) and m[key]:
                    msg[key] = m[key]
        if _weight(m, where, role) == 0:
            msg["weight"] = 0
        out.append(msg)
    return out


def _assistant_call(calls: list[dict], weight: int) -> dict:
    msg = {"role": "assistant", "content": "", "tool_calls": calls}
    if weight == 0:
        msg["weight"] = 0
    return msg


def _parse_calls(text: str, where: str) -> list[dict]:
    """A function_call turn's text: one `{"name", "arguments"}` object or a list of them (parallel calls)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is a function call but its text is not JSON ({exc.msg}); write "
                         '{"name": ..., "arguments": {...}}') from None
    return _tool_calls(value if isinstance(value, list) else [value], where)


def _tool_calls(raw, where: str) -> list[dict]:
    """OpenAI `tool_calls` (or bare `{"name", "arguments"}` objects) -> the normalised list."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}.tool_calls must be a non-empty list")
    calls = []
    for j, call in enumerate(raw):
        spot = f"{where}.tool_calls[{j}]"
        if not isinstance(call, dict):
            raise ValueError(f"{spot} must be an object with a function name and arguments")
        if call.get("type", "function") != "function":
            raise ValueError(f"{spot} has type {call.get('type')!r}; only function calls can be trained")
        fn = call.get("function", call)
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{spot} has no function name")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"{spot}.arguments is not valid JSON ({exc.msg})") from None
        if not isinstance(args, dict):
            raise ValueError(f"{spot}.arguments must be a JSON object, got {type(args).__name__}")
        out = {"type": "function", "function": {"name": name, "arguments": args}}
        if isinstance(call.get("id"), str) and call["id"]:
            out["id"] = call["id"]
        calls.append(out)
    return calls


def _tools(value, key: str) -> list[dict]:
    """A row's `tools` (a list, or a JSON string of one as LLaMA-Factory writes it) -> OpenAI's tool shape."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"field {key!r} is text but not JSON ({exc.msg}); give a list of tool schemas") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"field {key!r} must be a list of tool schemas")
    tools = []
    for j, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise ValueError(f"{key}[{j}] must be an object with a function name")
        if tool.get("type", "function") != "function":
            raise ValueError(f"{key}[{j}] has type {tool.get('type')!r}; only function tools can be trained")
        fn = tool.get("function", tool)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
            raise ValueError(f"{key}[{j}] has no function name")
        tools.append({"type": "function", "function": {k: v for k, v in fn.items() if k != "type"}})
    return tools


def _sharegpt_messages(data: dict) -> list[dict]:
    turns = data.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise ValueError("'conversations' must be a non-empty list")
    messages = []
    system = data.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    for i, t in enumerate(turns):
        where = f"conversations[{i}]"
        if not isinstance(t, dict):
            raise ValueError(f"{where} must be an object with from and value")
        speaker = str(t.get("from", "")).lower()
        role = _SHAREGPT_ROLES.get(speaker)
        if role is None:
            raise ValueError(f"{where}.from is {t.get('from')!r}; use human, gpt, system, function_call or observation")
        value = _text_content(t.get("value"), f"{where}.value")
        weight = _weight(t, where, "assistant" if role in ("assistant", "function_call") else role)
        if role == "function_call":
            messages.append(_assistant_call(_parse_calls(value, where), weight))
            continue
        msg = {"role": role, "content": value}
        if weight == 0:
            msg["weight"] = 0
        messages.append(msg)
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
    """An optional system message, then user and assistant turns alternating, ending with the assistant.

    An assistant turn with tool calls is answered by one or more tool turns, after which the assistant
    speaks again; at least one assistant turn must have weight 1.
    """
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if any(m["role"] == "system" for m in body):
        raise ValueError("a system message may only come first")
    if not body:
        raise ValueError("no user or assistant turns")
    previous = None  # the role of the turn before, with tool-calling assistant turns as "call"
    for i, m in enumerate(body):
        role = "call" if m["role"] == "assistant" and m.get("tool_calls") else m["role"]
        allowed = {None: ("user",), "user": ("assistant", "call"), "assistant": ("user",), "call": ("tool",),
                   "tool": ("tool", "assistant", "call")}[previous]
        if role not in allowed:
            if previous == "call":
                raise ValueError(f"role order: turn {i + 1} is {m['role']!r} but the tool calls before it need a "
                                 "'tool' turn with their result")
            if role == "tool":
                raise ValueError(f"role order: turn {i + 1} is a tool result, but the turn before it made no tool call")
            expected = " or ".join(repr("assistant" if r == "call" else r) for r in allowed)
            raise ValueError(f"role order: turn {i + 1} is {m['role']!r} but {expected} was expected "
                             "(user and assistant alternate)")
        previous = role
    if body[-1]["role"] != "assistant":
        raise ValueError("the last turn must be the assistant's (there is nothing to learn otherwise)")
    if all(m.get("weight", 1) == 0 for m in body if m["role"] == "assistant"):
        raise ValueError("every assistant turn has weight 0, so there is nothing to learn; set weight 1 on at least one")


def _check_tool_calls(messages: list[dict], tools: list[dict]) -> None:
    """Every call names a tool the row lists, and every tool result answers a call that was made."""
    names = [t["function"]["name"] for t in tools]
    ids: set[str] = set()
    for i, m in enumerate(messages):
        for j, call in enumerate(m.get("tool_calls", [])):
            name = call["function"]["name"]
            if not names:
                raise ValueError(f"messages[{i}] calls tool {name!r} but the row lists no tools; add its schema "
                                 "under 'tools' so the model learns what it can call")
            if name not in names:
                raise ValueError(f"messages[{i}].tool_calls[{j}] calls {name!r}, which is not in the row's tools "
                                 f"({', '.join(names)})")
            if "id" in call:
                ids.add(call["id"])
        if m["role"] == "tool" and "tool_call_id" in m and ids and m["tool_call_id"] not in ids:
            raise ValueError(f"messages[{i}].tool_call_id {m['tool_call_id']!r} answers no earlier tool call")


# ---------------------------------------------------------------- what the file's fields become

_FIELD_MEANINGS = {
    "messages": "the conversation, turn by turn (system, user, assistant and tool turns)",
    "conversations": "the conversation: human -> user, gpt -> assistant, function_call -> assistant tool call, "
                     "observation -> tool result",
    "system": "the system prompt (first turn)",
    "instruction": "the user turn", "input": "appended to the user turn after a blank line",
    "output": "the assistant reply (trained on)", "history": "earlier [user, assistant] turns (trained on)",
    "prompt": "the user turn", "completion": "the assistant reply (trained on)", "expected": "the assistant reply (trained on)",
    "text": "a document; every token is trained on",
    "tools": "tool schemas, rendered into the prompt (never trained on)",
    "functions": "tool schemas (legacy OpenAI name), rendered into the prompt (never trained on)",
    "weight": "per assistant turn: 1 trained on, 0 context only (no loss)",
    "tool_calls": "the assistant's tool calls, trained on like its text",
    "tool turns": "tool results, context only (no loss)",
    "chosen": "the preferred reply", "rejected": "the dispreferred reply",
    "preferred_output": "the preferred reply", "non_preferred_output": "the dispreferred reply",
    "label": "true: a desirable reply, false: an undesirable one (KTO)", "kto_tag": "true: desirable, false: undesirable (KTO)",
}


def describe_fields(rows: list[Row], row_format: str, kind: str, file_format: str) -> dict[str, str]:
    """What each field seen in the file becomes in training, for `data check --json`."""
    if file_format == "txt":
        return {"(blank-line-separated blocks)": "one text document each; every token is trained on"}
    if kind in ("preference", "kto"):
        preference = _preference()
        layouts = [preference.layout_of_row(r.data) for r in rows[:50] if r.data is not None]
        layouts = [x for x in layouts if x]
        return dict(preference.FIELD_ROLES.get(max(set(layouts), key=layouts.count), {})) if layouts else {}
    seen: set[str] = set()
    inner: set[str] = set()
    for row in rows[:200]:
        if row.data is None:
            continue
        seen |= set(row.data)
        for t in _turns(row.data):
            if isinstance(t, dict):
                inner |= set(t)
                if str(t.get("role", t.get("from", ""))).lower() in ("tool", "function", "observation"):
                    inner.add("tool turns")
    if row_format == "prompt_completion" and "prompt" not in seen:
        meanings = {**_FIELD_MEANINGS, "input": "the user turn"}
    else:
        meanings = _FIELD_MEANINGS
    out = {}
    for key in sorted(seen):
        out[key] = meanings.get(key, "not read (ignored)")
    for key in ("weight", "tool_calls", "tool turns"):
        if key in inner:
            out[f"{'messages' if 'messages' in seen else 'conversations'}[].{key}"] = meanings[key]
    return out


# ---------------------------------------------------------------- warnings about the content

def placeholder_warning(examples: list[dict], lines: list[int]) -> str | None:
    """Unreplaced `{{name}}`-style placeholders (LLaMA-Factory's identity.json ships with them)."""
    found: dict[str, list[int]] = {}
    for example, line in zip(examples, lines):
        texts = [example["text"]] if "text" in example else [m.get("content", "") for m in example["messages"]]
        for name in sorted({n for t in texts for n in _PLACEHOLDER.findall(t)}):
            found.setdefault(name, []).append(line)
    if not found:
        return None
    all_lines = sorted({n for v in found.values() for n in v})
    names = ", ".join("{{" + n + "}}" for n in found)
    return (f"Unreplaced placeholders {names} on {_line_list(all_lines)}: this looks like a template file (such as "
            "LLaMA-Factory's identity.json); replace them with the real values, or the model learns the braces literally.")


# ---------------------------------------------------------------- public entry points

# Readers of dataset *names* instead of files, as (accepts(path), read(path, fmt, stage=, dataset_dir=)):
# trainer.data.dataset_info (LLaMA-Factory's dataset_info.json) adds itself when trainer.data is imported,
# so this module does not import it (it imports this one).
NAME_READERS: list[tuple] = []


def read_dataset(path: str | Path, fmt: str = "auto", stage: str | None = "sft",
                 dataset_dir: str | Path | None = None) -> LoadedData:
    """Read and normalise a file, keeping bad rows as errors instead of raising (for checks and --skip-bad-rows).

    Raises DataError when the file as a whole cannot be used: unreadable, no rows, no known format, a
    mix of kinds, or a kind that `stage` (method.stage) cannot train (the message names the stage that can).
    `stage=None` skips that last check (the caller decides). Preference and KTO rows are normalised by
    `trainer.data.preference`. A `path` of dataset names (`identity,alpaca_en_demo`) is read through the
    LLaMA-Factory `dataset_info.json` in `dataset_dir` (`trainer.data.dataset_info`).
    """
    for accepts, read_names in NAME_READERS:
        if accepts(path):
            return read_names(str(path), fmt, stage=stage, dataset_dir=dataset_dir)
    p = Path(path).expanduser()
    rows, encoding, kind = read_rows(p)
    return loaded_from_rows(rows, p, encoding, kind, fmt, stage)


def loaded_from_rows(rows: list[Row], p: Path, encoding: str, kind: str, fmt: str = "auto",
                     stage: str | None = "sft") -> LoadedData:
    """`read_dataset` after the rows are read: detect the kind and format, check the stage, normalise each row."""
    if fmt not in ("auto", *FORMATS):
        raise DataError(f"Unknown dataset format {fmt!r}; use auto or one of {', '.join(FORMATS)}.")
    if not any(r.data is not None for r in rows):
        if rows:
            first = rows[0]
            raise DataError(f"{p.name} line {first.line}: {first.error}", [{"line": r.line, "message": r.error} for r in rows])
        raise DataError(f"{p} has no rows; add training examples to it.")
    data_kind, _lines = detect_kind(rows)
    if data_kind in ("preference", "kto"):
        row_format = data_kind
    else:
        row_format = detect_format(rows) if fmt == "auto" else fmt
        if data_kind is None or fmt != "auto":  # a forced format decides between text and chat
            data_kind = "text" if row_format == "text" else ("tools" if data_kind == "tools" else "sft")
    if stage is not None:
        problem = stage_problem(data_kind, stage)
        if problem:
            raise DataError(f"{p.name}: {problem}")
    loaded = LoadedData(path=p, encoding=encoding, file_format=kind, row_format=row_format, total_rows=len(rows),
                        kind=data_kind, fields=describe_fields(rows, row_format, data_kind, kind))
    normalise_row = _preference_normaliser(data_kind) if data_kind in ("preference", "kto") else (
        lambda data: normalise(data, row_format))
    for row in rows:
        if row.data is None:
            loaded.errors.append({"line": row.line, "message": row.error})
            continue
        try:
            loaded.examples.append(normalise_row(row.data))
            loaded.lines.append(row.line)
        except ValueError as exc:
            loaded.errors.append({"line": row.line, "message": str(exc)})
    if data_kind not in ("preference", "kto"):
        warning = placeholder_warning(loaded.examples, loaded.lines)
        if warning:
            loaded.warnings.append(warning)
    return loaded


def _preference_normaliser(kind: str):
    """The preference module's row reader (it raises ValueError naming what is wrong with a row)."""
    preference = _preference()
    return lambda data: preference.normalise_row(data, preference.layout_of_row(data))


def request_conversation(messages, tools=None) -> dict:
    """An OpenAI chat request's `messages` (+ `tools`) -> `{"messages", "tools"?}` as training normalises them,
    for asking a tool-calling model (a server or eval row): the same readers and tool-call checks, but the
    conversation may end on a user or tool turn. Raises ValueError naming the field that is wrong."""
    tools = _tools(tools, "tools")
    normalised = _chat_messages(messages)
    _check_tool_calls(normalised, tools)
    return {"messages": normalised, "tools": tools} if tools else {"messages": normalised}


def read_tools(path: str | Path) -> list[dict]:
    """A JSON file holding a list of tool schemas (OpenAI's or LLaMA-Factory's shape) -> the normalised list,
    for asking a tool-calling model the way it was trained (`tunepilot chat-model --tools`)."""
    p = Path(path).expanduser()
    text, _encoding = read_text(p)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{p.name} is not JSON (line {exc.lineno}: {exc.msg}); give a list of tool schemas.") from None
    try:
        tools = _tools(value, "tools")
    except ValueError as exc:
        raise DataError(f"{p.name}: {exc}.") from None
    if not tools:
        raise DataError(f"{p.name} lists no tools; give a list of tool schemas.")
    return tools


def format_problems(path: Path, problems: list[dict], limit: int = 5) -> str:
    shown = "; ".join(f"line {p['line']}: {p['message']}" for p in problems[:limit])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return f"{path.name} has {len(problems)} bad row(s): {shown}{more}"


def load_examples(path: str | Path, fmt: str = "auto", skip_bad_rows: bool = False, stage: str | None = "sft",
                  dataset_dir: str | Path | None = None) -> list[dict]:
    """Normalised examples of a dataset file; bad rows raise DataError listing them unless `skip_bad_rows`."""
    loaded = read_dataset(path, fmt, stage=stage, dataset_dir=dataset_dir)
    if loaded.errors and not skip_bad_rows:
        raise DataError(format_problems(loaded.path, loaded.errors) + "; fix them or pass --skip-bad-rows.", loaded.errors)
    if not loaded.examples:
        raise DataError(f"{loaded.path.name} has no usable examples.", loaded.errors)
    return loaded.examples
