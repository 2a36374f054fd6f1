"""Preference data: pairs (DPO / ORPO) and labelled single answers (KTO), read into TRL's conversational shapes.

Row layouts understood (one kind per file; `kind_of_row` tells which kind a row is):

- preference, LLaMA-Factory sharegpt: ``{"conversations": [...prompt turns], "chosen": {"from": "gpt", "value"},
  "rejected": {...}, "system"?}`` (also ``"messages"`` with ``role``/``content`` turns)
- preference, LLaMA-Factory alpaca: ``{"instruction", "input"?, "system"?, "history"?, "chosen": "...", "rejected": "..."}``
- preference, OpenAI DPO JSONL: ``{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", ...}],
  "non_preferred_output": [...]}``
- preference, TRL: ``{"prompt"?, "chosen", "rejected"}`` as texts or message lists (without `prompt`, the shared
  leading turns of `chosen` and `rejected` are the prompt, TRL's "implicit prompt")
- KTO: ``{"messages" | "conversations": [... ending with the assistant], "label": true|false}`` (LLaMA-Factory's
  `kto_tag` column) or TRL's ``{"prompt", "completion", "label"}``

Output rows are TRL's conversational shapes: ``{"prompt": [msgs], "chosen": [assistant msg], "rejected": [...]}`` and
``{"prompt": [msgs], "completion": [assistant msg], "label": bool}``. Turn contents go through the chat readers of
`trainer.data.formats`, so every content form the SFT reader accepts is accepted here too. Bad rows are kept as
line-numbered errors, as in the SFT reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PREFERENCE = "preference"
KTO = "kto"
Kind = Literal["preference", "kto"]

_PAIR_KEYS = {"chosen", "rejected"}
_OPENAI_KEYS = {"preferred_output", "non_preferred_output"}
_KTO_BODY_KEYS = {"messages", "conversations", "completion"}

# What each field of a layout becomes (shown by the data check so a user sees how the file is read).
FIELD_ROLES = {
    "sharegpt": {"conversations": "prompt turns", "system": "system prompt",
                 "chosen": "preferred reply", "rejected": "dispreferred reply"},
    "messages": {"messages": "prompt turns", "chosen": "preferred reply", "rejected": "dispreferred reply"},
    "alpaca": {"instruction": "user turn", "input": "appended to the user turn", "system": "system prompt",
               "history": "earlier turns", "chosen": "preferred reply", "rejected": "dispreferred reply"},
    "openai_dpo": {"input.messages": "prompt turns", "preferred_output": "preferred reply",
                   "non_preferred_output": "dispreferred reply"},
    "trl": {"prompt": "prompt turns", "chosen": "preferred reply", "rejected": "dispreferred reply"},
    "kto_messages": {"messages": "prompt turns + the judged reply (last assistant turn)",
                     "label": "true = desirable reply, false = undesirable (pushed down, never a target)"},
    "kto_sharegpt": {"conversations": "prompt turns + the judged reply (last assistant turn)", "system": "system prompt",
                     "label": "true = desirable reply, false = undesirable (pushed down, never a target)"},
    "kto_prompt_completion": {"prompt": "prompt turns", "completion": "the judged reply",
                              "label": "true = desirable reply, false = undesirable (pushed down, never a target)"},
}
# Fields each layout reads; anything else in a row is named as unused rather than silently dropped.
_READ_KEYS = {name: {k.split(".")[0] for k in roles} for name, roles in FIELD_ROLES.items()}


def kind_of_row(row: dict) -> Kind | None:
    """"preference" for a chosen/rejected pair, "kto" for a labelled answer, None for anything else (SFT, text)."""
    if not isinstance(row, dict):
        return None
    keys = set(row)
    # Either half of a pair is enough: a row with `chosen` but no `rejected` is a broken pair, not an SFT row.
    if keys & _PAIR_KEYS or keys & _OPENAI_KEYS:
        return PREFERENCE
    if "label" in keys and keys & _KTO_BODY_KEYS:
        return KTO
    return None


def layout_of_row(row: dict) -> str | None:
    """Which of the layouts in FIELD_ROLES a row uses (None when it is not a preference/KTO row)."""
    kind = kind_of_row(row)
    if kind == PREFERENCE:
        if row.keys() & _OPENAI_KEYS:
            return "openai_dpo"
        if "conversations" in row:
            return "sharegpt"
        if "instruction" in row:
            return "alpaca"
        if "messages" in row:
            return "messages"
        return "trl"
    if kind == KTO:
        if "messages" in row:
            return "kto_messages"
        if "conversations" in row:
            return "kto_sharegpt"
        return "kto_prompt_completion"
    return None


@dataclass
class PreferenceData:
    """Everything read from one preference/KTO file: usable rows (TRL shapes), their lines, bad rows, warnings."""

    path: Path
    encoding: str
    file_format: str
    kind: Kind
    layout: str
    rows: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # {"line", "message"}
    warnings: list[dict] = field(default_factory=list)  # {"line" (or None for the whole file), "message"}
    total_rows: int = 0

    def to_dict(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "layout": self.layout, "encoding": self.encoding,
                "file_format": self.file_format, "rows": self.total_rows, "usable_rows": len(self.rows),
                "fields": FIELD_ROLES.get(self.layout, {}), "errors": self.errors, "warnings": self.warnings}


# ---------------------------------------------------------------- one row

def normalise_row(data: dict, layout: str) -> dict:
    """One row -> TRL's conversational shape; raises ValueError saying what is wrong."""
    if layout in ("kto_messages", "kto_sharegpt", "kto_prompt_completion"):
        return _kto_row(data, layout)
    if "tools" in data or (isinstance(data.get("input"), dict) and "tools" in data["input"]):
        # Named, not dropped: training on the pair without its tool schema would teach the wrong thing.
        raise ValueError("'tools' in preference rows is not supported yet; remove it or train tool calling with SFT")
    prompt = _pair_prompt(data, layout)
    chosen, rejected = _reply(data, layout, "chosen"), _reply(data, layout, "rejected")
    if prompt is None:  # TRL's implicit prompt: the turns chosen and rejected share
        prompt, chosen, rejected = _split_implicit_prompt(chosen, rejected)
    _check_plain_turns(prompt + chosen + rejected)
    _check_order(prompt, chosen)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _check_plain_turns(turns: list[dict]) -> None:
    """Tool turns and per-message weights are SFT features; in a pair or a KTO row they are named, not dropped."""
    for m in turns:
        if m["role"] == "tool" or m.get("tool_calls"):
            raise ValueError("tool calls in preference/KTO rows are not supported yet; train tool calling with SFT")
        if "weight" in m:
            raise ValueError("'weight' only applies to SFT turns; a preference or KTO reply is scored as a whole")


def _formats():
    # Imported on use: trainer.data.formats asks this module what kind a row is, so a top-level import would be circular.
    from trainer.data import formats

    return formats


def _pair_prompt(data: dict, layout: str) -> list[dict] | None:
    f = _formats()
    if layout == "sharegpt":
        return f._sharegpt_messages(data)
    if layout == "messages":
        return f._chat_messages(data.get("messages"))
    if layout == "alpaca":
        # The alpaca reader builds system + history + the user turn; its last (assistant) turn is a placeholder.
        return f._alpaca_messages({**data, "output": "-"})[:-1]
    if layout == "openai_dpo":
        inp = data.get("input")
        if not isinstance(inp, dict):
            raise ValueError("'input' must be an object with 'messages'")
        return f._chat_messages(inp.get("messages"))
    if "prompt" not in data:
        return None
    return _turns(data["prompt"], "prompt", default_role="user")


def _reply(data: dict, layout: str, which: str) -> list[dict]:
    key = {"chosen": "preferred_output", "rejected": "non_preferred_output"}[which] if layout == "openai_dpo" else which
    if key not in data or data[key] is None:
        raise ValueError(f"missing field {key!r}")
    value = data[key]
    if layout == "sharegpt" and isinstance(value, dict):
        turns = _formats()._sharegpt_messages({"conversations": [value]})
    elif isinstance(value, dict):
        turns = _formats()._chat_messages([value])
    else:
        turns = _turns(value, key, default_role="assistant")
    if data.get("prompt") is None and layout == "trl":
        return turns  # whole conversations; the shared prompt is split off by the caller
    return _one_assistant_turn(turns, key)


def _turns(value, key: str, default_role: str) -> list[dict]:
    """A text (one turn of `default_role`) or a list of chat messages."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"field {key!r} is empty")
        return [{"role": default_role, "content": value}]
    if isinstance(value, list):
        try:
            return _formats()._chat_messages(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    raise ValueError(f"field {key!r} must be text or a list of messages, got {type(value).__name__}")


def _one_assistant_turn(turns: list[dict], key: str) -> list[dict]:
    if len(turns) != 1 or turns[0]["role"] != "assistant":
        roles = ", ".join(t["role"] for t in turns)
        raise ValueError(f"{key!r} must be exactly one assistant reply, got {len(turns)} turn(s) ({roles})")
    return turns


def _split_implicit_prompt(chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    prompt = chosen[:n]
    if not prompt:
        raise ValueError("no 'prompt' field and 'chosen'/'rejected' share no leading turns; add a 'prompt'")
    return prompt, _one_assistant_turn(chosen[n:], "chosen"), _one_assistant_turn(rejected[n:], "rejected")


def _check_order(prompt: list[dict], reply: list[dict]) -> None:
    if not prompt or prompt[-1]["role"] != "user":
        raise ValueError("the prompt must end with a user turn (the reply answers it)")
    _formats().check_role_order(prompt + reply)


def _kto_row(data: dict, layout: str) -> dict:
    label = _label(data.get("label"))
    if layout == "kto_prompt_completion":
        if "prompt" not in data:
            raise ValueError("missing field 'prompt'")
        if "completion" not in data or data["completion"] is None:
            raise ValueError("missing field 'completion'")
        prompt = _turns(data["prompt"], "prompt", default_role="user")
        completion = _one_assistant_turn(_turns(data["completion"], "completion", default_role="assistant"), "completion")
    else:
        f = _formats()
        messages = f._chat_messages(data.get("messages")) if layout == "kto_messages" else f._sharegpt_messages(data)
        if messages[-1]["role"] != "assistant":
            raise ValueError("the last turn must be the assistant reply that `label` judges")
        prompt, completion = messages[:-1], messages[-1:]
    _check_plain_turns(prompt + completion)
    _check_order(prompt, completion)
    return {"prompt": prompt, "completion": completion, "label": label}


def _label(value) -> bool:
    if isinstance(value, bool):
        return value
    # CSV cells arrive as text; only the two spellings of a boolean are read, anything else is refused.
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    shown = "missing" if value is None else json.dumps(value, ensure_ascii=False)
    raise ValueError(f"'label' must be true or false, got {shown}")


# ---------------------------------------------------------------- a file

def read_preference(path: str | Path) -> PreferenceData:
    """Read a preference or KTO file, keeping bad rows as errors (the data check and --skip-bad-rows use this).

    Raises DataError only when the file as a whole is unusable (unreadable, empty, not a preference/KTO file).
    """
    f = _formats()
    p = Path(path).expanduser()
    rows, encoding, file_format = f.read_rows(p)
    readable = [r for r in rows if r.data is not None]
    if not readable:
        if rows:
            raise f.DataError(f"{p.name} line {rows[0].line}: {rows[0].error}",
                              [{"line": r.line, "message": r.error} for r in rows])
        raise f.DataError(f"{p} has no rows; add preference pairs to it.")
    kinds = [kind_of_row(r.data) for r in readable]
    counted = {k: kinds.count(k) for k in set(kinds)}
    kind = max((k for k in counted if k), key=lambda k: counted[k], default=None)
    if kind is None:
        raise f.DataError(f"{p.name} holds no preference pairs (chosen/rejected, preferred_output/non_preferred_output) "
                          "or KTO rows (messages + label); it is SFT data: use method.stage = \"sft\".")
    layouts = [layout_of_row(r.data) for r in readable if kind_of_row(r.data) == kind]
    layout = max(set(layouts), key=layouts.count)
    data = PreferenceData(path=p, encoding=encoding, file_format=file_format, kind=kind, layout=layout,
                          total_rows=len(rows))
    unused: dict[str, int] = {}
    for row in rows:
        if row.data is None:
            data.errors.append({"line": row.line, "message": row.error})
            continue
        row_kind = kind_of_row(row.data)
        if row_kind != kind:
            other = row_kind or "an SFT/text example"
            data.errors.append({"line": row.line, "message": f"this row is {other} but the file is {kind} data; "
                                                             "one file holds one kind"})
            continue
        row_layout = layout_of_row(row.data)
        for key in set(row.data) - _READ_KEYS[row_layout]:
            unused.setdefault(key, row.line)
        try:
            example = normalise_row(row.data, row_layout)
        except ValueError as exc:
            data.errors.append({"line": row.line, "message": str(exc)})
            continue
        if kind == PREFERENCE and example["chosen"] == example["rejected"]:
            data.warnings.append({"line": row.line, "message": "chosen and rejected are identical; this pair teaches nothing"})
        data.rows.append(example)
        data.lines.append(row.line)
    if unused:
        shown = ", ".join(f"{k!r} (first on line {line})" for k, line in sorted(unused.items(), key=lambda kv: kv[1]))
        data.warnings.append({"line": None, "message": f"field(s) not used for {kind} training: {shown}"})
    if kind == KTO and data.rows and len({r["label"] for r in data.rows}) == 1:
        only = "true (desirable)" if data.rows[0]["label"] else "false (undesirable)"
        data.warnings.append({"line": None, "message": f"every label is {only}; KTO learns most from both kinds"})
    return data


def load_preference(path: str | Path, skip_bad_rows: bool = False) -> PreferenceData:
    """Like `read_preference`, but bad rows raise DataError listing them unless `skip_bad_rows`."""
    f = _formats()
    data = read_preference(path)
    if data.errors and not skip_bad_rows:
        raise f.DataError(f.format_problems(data.path, data.errors) + "; fix them or pass --skip-bad-rows.", data.errors)
    if not data.rows:
        raise f.DataError(f"{data.path.name} has no usable {data.kind} rows.", data.errors)
    return data


def is_preference_file(path: str | Path) -> Kind | None:
    """The kind of a data file by its readable rows (None for SFT/text files); for rules and the method check."""
    f = _formats()
    try:
        rows, _, _ = f.read_rows(Path(path).expanduser())
    except (f.DataError, OSError):
        return None
    kinds = [kind_of_row(r.data) for r in rows[:50] if r.data is not None]
    found = [k for k in kinds if k]
    return max(set(found), key=found.count) if found else None


# ---------------------------------------------------------------- tokens

def encode_reply(tokenizer, prompt: list[dict], reply: list[dict]) -> tuple[list[int], list[int]]:
    """(prompt_ids, reply_ids) split the way TRL's preference trainers split them.

    Both the prompt (with the generation prompt) and prompt + reply are rendered through the chat template; the
    reply starts where the two token sequences diverge. The stats, the memory estimate and the pairwise eval all
    use this, so they count the tokens the trainer scores.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("preference data needs a tokenizer with a chat template (the prompt/reply split comes from it)")
    prompt_ids = list(_as_ids(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)))
    full_ids = list(_as_ids(tokenizer.apply_chat_template(prompt + reply, tokenize=True)))
    n = 0
    while n < min(len(prompt_ids), len(full_ids)) and prompt_ids[n] == full_ids[n]:
        n += 1
    return full_ids[:n], full_ids[n:]


def _as_ids(out) -> list[int]:
    # apply_chat_template returns a list of ids, or a BatchEncoding when a tokenizer defaults to return_dict.
    return out["input_ids"] if hasattr(out, "keys") else out
