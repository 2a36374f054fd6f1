"""Chat formatting: render messages with the tokenizer's chat template, and know where a turn ends.

Tokenizers converted from GGUF (the built-in Gemma) carry no chat template, so we install Gemma's
turn format. For other tokenizers without a template, a plain `Role: text` fallback is used and
generation stops at the EOS token; the fallback is documented in the trainer docs.

Tool calling: a template that reads the `tools` variable (Qwen, Llama 3.1, ...) renders tools, tool
calls and tool results itself. For every other template (Gemma's has no tool support) the messages
are first folded into plain turns by `plain_tool_messages`, the documented fallback of
knowledge/docs/en/tool-calling.md:

- the tools are listed as JSON, one schema per line, in a preamble put before the system prompt;
- an assistant tool call becomes a fenced block ```` ```tool_call ```` holding
  ``{"name": ..., "arguments": {...}}`` (one block per call, after any text of the turn);
- tool results become a user turn of ```` ```tool_result ```` blocks, one per result, in order.

Training (`trainer.data.sft`) and generation (`trainer.models.generation`) both render through
`render_prompt`, so a model is asked the way it was trained; `parse_tool_calls` reads the calls back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

# Gemma's turn format: <start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n.
# Gemma has no system role; a system message is prepended to the first user turn, as Google's template does.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\n\n' %}{% set msgs = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}"
    "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{% if loop.first and role == 'user' %}{{ system }}{% endif %}"
    "{% if role == 'model' %}{% generation %}{{ m['content'] | trim }}<end_of_turn>{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ m['content'] | trim }}<end_of_turn>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>")

TOOL_CALL_FENCE = "```tool_call"
TOOL_RESULT_FENCE = "```tool_result"
TOOLS_PREAMBLE = ("You can call these tools (JSON schemas, one per line):\n{tools}\n"
                  "To call a tool, reply with a block\n" + TOOL_CALL_FENCE + "\n"
                  '{{"name": "<tool name>", "arguments": {{...}}}}\n```\n'
                  "Each result comes back in a " + TOOL_RESULT_FENCE + " block.")


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


_JINJA_CODE = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
_TOOLS_NAME = re.compile(r"(?<![\w.'\"])tools(?![\w'\"])")


@lru_cache(maxsize=32)
def _template_reads_tools(template: str) -> bool:
    # The variable `tools` used inside a template statement or expression (not merely the word in its text).
    return any(_TOOLS_NAME.search(code) for code in _JINJA_CODE.findall(template))


def supports_tools(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders `tools` itself (else the documented fallback is used)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: transformers picks "tool_use" when tools are given
        return "tool_use" in template
    return isinstance(template, str) and _template_reads_tools(template)


def _uses_tools(messages: list[dict], tools) -> bool:
    return bool(tools) or any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def _call_block(call: dict) -> str:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):  # OpenAI sends arguments as JSON text; show them as the object they are
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            pass
    body = json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
    return f"{TOOL_CALL_FENCE}\n{body}\n```"


def tools_preamble(tools: list[dict]) -> str:
    schemas = [t.get("function", t) for t in tools]
    return TOOLS_PREAMBLE.format(tools="\n".join(json.dumps(s, ensure_ascii=False) for s in schemas))


def plain_tool_messages(messages: list[dict], tools: list[dict] | None = None) -> list[dict]:
    """Tools, tool calls and tool results folded into system/user/assistant text turns (the fallback).

    Keys other than role and content (such as `weight`) stay on the assistant turns, one for one.
    """
    out: list[dict] = []
    if tools:
        preamble = tools_preamble(tools)
        if messages and messages[0]["role"] == "system":
            out.append({**messages[0], "content": preamble + "\n\n" + messages[0]["content"]})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": preamble})
    for m in messages:
        if m["role"] == "tool":
            block = f"{TOOL_RESULT_FENCE}\n{m['content'].strip()}\n```"
            if out and out[-1].get("_results"):  # consecutive results share one user turn
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_results": True})
            continue
        if m["role"] == "assistant" and m.get("tool_calls"):
            parts = [m["content"].strip()] if (m.get("content") or "").strip() else []
            parts += [_call_block(c) for c in m["tool_calls"]]
            rest = {k: v for k, v in m.items() if k not in ("tool_calls", "content")}
            out.append({**rest, "content": "\n".join(parts)})
            continue
        out.append(dict(m))
    for m in out:
        m.pop("_results", None)
    return out


def prepare_messages(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> tuple[list[dict], list | None]:
    """(messages, tools) as the template gets them: as given for a tool-aware template, else the fallback."""
    if not _uses_tools(messages, tools):
        return messages, None
    if has_chat_template(tokenizer) and supports_tools(tokenizer):
        return messages, (tools or None)
    return plain_tool_messages(messages, tools), None


def render_prepared(tokenizer, messages: list[dict], add_generation_prompt: bool = True, tools: list | None = None) -> str:
    """Render messages already passed through `prepare_messages`."""
    if has_chat_template(tokenizer):
        kwargs = {"tools": tools} if tools else {}
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs)
    lines = [f"{m['role'].capitalize()}: {m['content'].strip()}" for m in messages]
    if add_generation_prompt:
        lines.append("Assistant:")
    return "\n".join(lines)


def render_prompt(tokenizer, messages: list[dict], add_generation_prompt: bool = True,
                  tools: list[dict] | None = None) -> str:
    """Messages (and tools) -> the prompt string the model was trained on (or the documented fallback)."""
    prepared, native_tools = prepare_messages(tokenizer, messages, tools)
    return render_prepared(tokenizer, prepared, add_generation_prompt, native_tools)


@dataclass
class ToolReply:
    """A generated reply split into its text and its tool calls (OpenAI's `tool_calls` shape)."""

    content: str
    tool_calls: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # blocks that looked like calls but could not be read


_FENCED_CALL = re.compile(r"```tool_call\s*\n(.*?)\n?```", re.DOTALL)
_TAGGED_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)  # the Hermes/Qwen convention


def parse_tool_calls(text: str, tools: list[dict] | None = None) -> ToolReply:
    """Read tool calls out of generated text: the fallback's fenced blocks or `<tool_call>` tags.

    A block that is not exactly a JSON `{"name", "arguments"}` object, or names a tool not in `tools` (when
    given), is reported in `problems` and left in the text rather than guessed at.
    """
    names = {t.get("function", t).get("name") for t in tools} if tools else None
    calls, problems, kept = [], [], []
    last = 0
    matches = sorted(list(_FENCED_CALL.finditer(text)) + list(_TAGGED_CALL.finditer(text)), key=lambda m: m.start())
    for match in matches:
        if match.start() < last:
            continue
        kept.append(text[last:match.start()])
        last = match.end()
        try:
            value = json.loads(match.group(1))
        except json.JSONDecodeError as exc:
            problems.append(f"tool call block is not JSON ({exc.msg}): {match.group(1)[:80]!r}")
            kept.append(match.group(0))
            continue
        shaped = isinstance(value, dict) and set(value) == {"name", "arguments"}
        name, args = (value["name"], value["arguments"]) if shaped else (None, None)
        if not isinstance(name, str) or not isinstance(args, dict):
            problems.append(f"tool call block needs a name and an arguments object: {match.group(1)[:80]!r}")
            kept.append(match.group(0))
            continue
        if names is not None and name not in names:
            problems.append(f"the reply calls {name!r}, which is not one of the tools ({', '.join(sorted(names))})")
            kept.append(match.group(0))
            continue
        calls.append({"id": f"call_{len(calls)}", "type": "function",
                      "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}})
    kept.append(text[last:])
    return ToolReply(content="".join(kept).strip(), tool_calls=calls, problems=problems)


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: the template's end-of-turn marker(s) and EOS."""
    ids: list[int] = []
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_TOKENS:
        if tok in vocab:
            ids.append(vocab[tok])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
