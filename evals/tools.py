"""Tool-calling eval rows: a `tools` column offers tools to the model, `expected_tool_call` says which call it
should make.

- `tools`: a JSON list of tool schemas (OpenAI's `{"type": "function", "function": {...}}` or the bare
  function objects LLaMA-Factory writes), as a JSON field or as JSON text in a CSV cell. The row is asked
  with them exactly as a tool-calling fine-tune was trained (`trainer.models.generation`), and read by the
  training reader (`trainer.data.formats.request_conversation`), so a schema training would refuse is
  refused here too, with the row number.
- `expected_tool_call`: `{"name": ..., "arguments": {...}}` (arguments may be omitted: then only the name
  is checked, or be JSON text as OpenAI sends them), or JSON `null` for "the model should not call a tool".

A reply is read with `generation.tool_reply`; replies from OpenAI-compatible servers come back as
`tool_calls` and are written into the reply text in the documented fallback form (`reply_text`), so one
reader scores both.
"""

from __future__ import annotations

import json

from evals.errors import EvalError

TOOLS_COLUMN = "tools"
EXPECTED_CALL_COLUMN = "expected_tool_call"
NO_CELL = object()


def _json_cell(value, column: str, number: int):
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"Row {number}: the {column!r} cell is not JSON ({exc.msg}); write it as JSON.") from None
    return value


def row_tools(row: dict, number: int, messages: list[dict]) -> list[dict] | None:
    """The row's tools in OpenAI's shape (None when it has none); raises EvalError naming the row."""
    from trainer.data.formats import request_conversation

    value = _json_cell(row.get(TOOLS_COLUMN), TOOLS_COLUMN, number)
    if not value:
        return None
    try:
        return request_conversation(messages, value).get("tools") or None
    except ValueError as exc:
        raise EvalError(f"Row {number}: {exc}; fix its {TOOLS_COLUMN!r} cell.") from None


def expected_call(row: dict, number: int):
    """The row's expected call as `{"name", "arguments"?}`, None for "no call", or NO_CELL (no cell)."""
    if EXPECTED_CALL_COLUMN not in row or (isinstance(row[EXPECTED_CALL_COLUMN], str)
                                          and not row[EXPECTED_CALL_COLUMN].strip()):
        return NO_CELL
    value = _json_cell(row[EXPECTED_CALL_COLUMN], EXPECTED_CALL_COLUMN, number)
    if value is None:
        return None
    fn = value.get("function", value) if isinstance(value, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
        raise EvalError(f"Row {number}: {EXPECTED_CALL_COLUMN} must be {{\"name\": ..., \"arguments\": {{...}}}} "
                        "(or null for no call).")
    out = {"name": fn["name"]}
    if "arguments" in fn:
        args = _json_cell(fn["arguments"], f"{EXPECTED_CALL_COLUMN}.arguments", number)
        if not isinstance(args, dict):
            raise EvalError(f"Row {number}: {EXPECTED_CALL_COLUMN}.arguments must be a JSON object.")
        out["arguments"] = args
    return out


def has_expected_call(row: dict) -> bool:
    return expected_call(row, 0) is not NO_CELL


def reply_calls(text: str, tools: list[dict] | None) -> list[dict]:
    """The calls in a reply as `{"name", "arguments"}` with arguments parsed (unreadable blocks are not calls)."""
    from trainer.models import generation

    parsed = generation.tool_reply(text or "", tools)
    return [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
            for c in parsed.tool_calls]


def call_matches(expected, calls: list[dict], subset: bool = False) -> bool:
    """Whether the reply made the expected call (the first call counts), or made none when none is expected.

    Arguments must be equal, or with `subset` every expected argument must be present with the same value."""
    if expected is None:
        return not calls
    if not calls or calls[0]["name"] != expected["name"]:
        return False
    if "arguments" not in expected:
        return True
    got, want = calls[0]["arguments"], expected["arguments"]
    return all(k in got and got[k] == v for k, v in want.items()) if subset else got == want


def reply_text(content: str | None, tool_calls: list | None) -> str:
    """An OpenAI reply (`content` + `tool_calls`) as text in the documented fallback form, for the scorer."""
    if not tool_calls:
        return content or ""
    from trainer.models.chat_format import plain_tool_messages

    calls = [{"type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
             for c in tool_calls]
    return plain_tool_messages([{"role": "assistant", "content": content or "", "tool_calls": calls}])[0]["content"]
