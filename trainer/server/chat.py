"""POST /v1/chat/completions: OpenAI's chat API on base and fine-tuned models, streamed or not.

Messages are rendered with the model's chat template (Gemma's turn format for the built-in model),
exactly as in `tunepilot chat-model`, so a fine-tuned model answers the way it was trained.

Tool calling: a request with `tools`, or with assistant `tool_calls` and `tool` turns, is read by
`trainer.data.formats.request_conversation` (the training reader, so the same checks and names) and
rendered with the tools through `generation.chat_prompt`: the tokenizer's own tool template, else the
documented fallback (knowledge/docs/en/tool-calling.md). Calls in the reply become OpenAI `tool_calls`
with finish_reason "tool_calls". `tool_choice` "auto" (the default) and "none" (tools left out of the
prompt, reply returned as text) are honoured; "required" or a named function would need constrained
decoding, so they are a 400. Streamed with tools, the reply is held back until it is complete and then
sent as a content delta and `delta.tool_calls` chunks: a call cannot be told from text until it ends.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from trainer.data.formats import request_conversation
from trainer.models import generation
from trainer.server.errors import APIError
from trainer.server.generation_routes import acquire_model, stream_events
from trainer.server.schemas import SamplingFields, new_id, now, usage
from trainer.server.streaming import sse_event, sse_response

router = APIRouter()
log = logging.getLogger("tunepilot.server")

# "developer" is OpenAI's newer name for the system role.
_ROLE_MAP = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    # Typed loosely on purpose: `request_conversation` reads them and names the exact field that is wrong.
    tools: Any = Field(None, description="OpenAI function tools offered to the model.")
    tool_choice: Any = Field(None, description='"auto" (default) or "none".')

    def uses_tools(self) -> bool:
        return bool(self.tools) or any(m.role in ("tool", "function") or (m.model_extra or {}).get("tool_calls")
                                       for m in self.messages)


def normalize_messages(messages: list[ChatMessage]) -> list[dict]:
    """OpenAI messages -> plain {"role", "content"} text turns; leading system turns are merged."""
    out: list[dict] = []
    for i, m in enumerate(messages):
        role = _ROLE_MAP.get(m.role)
        if role is None:
            raise APIError(400, f"messages[{i}].role {m.role!r} is not supported; use system, developer, user "
                                "or assistant (or tool, answering an assistant's tool_calls).",
                           param=f"messages.{i}.role")
        if isinstance(m.content, list):
            parts = []
            for part in m.content:
                if part.get("type") != "text":
                    raise APIError(400, f"messages[{i}] has a {part.get('type')!r} part; only text content is "
                                        "supported.", param=f"messages.{i}.content")
                parts.append(str(part.get("text", "")))
            text = "".join(parts)
        elif m.content is None:
            raise APIError(400, f"messages[{i}].content is empty; give each message text.",
                           param=f"messages.{i}.content")
        else:
            text = m.content
        if role == "system" and out and out[-1]["role"] == "system" and len(out) == 1:
            out[-1]["content"] += "\n\n" + text  # the template takes one system turn, first
            continue
        out.append({"role": role, "content": text})
    if not any(m["role"] == "user" for m in out):
        raise APIError(400, "messages has no user message; add one with role 'user'.", param="messages")
    return out


_WHERE = re.compile(r"^(?:field '(\w+)'|(messages|tools)\[(\d+)\]((?:\.\w+)?))")


def _param_of(problem: str) -> str:
    """The OpenAI `param` for a reader message: "messages[2].tool_calls[0] ..." -> "messages.2.tool_calls"."""
    m = _WHERE.match(problem)
    if not m:
        return "messages"
    if m.group(1):
        return m.group(1)
    return f"{m.group(2)}.{m.group(3)}{m.group(4)}"


def tool_conversation(body: ChatCompletionRequest) -> tuple[list[dict], list[dict]]:
    """(messages, tools) of a request that uses tools, read as training reads them; a 400 names the field."""
    raw = [m.model_dump(exclude_none=True) for m in body.messages]
    try:
        conversation = request_conversation(raw, body.tools)
    except ValueError as exc:
        problem = str(exc)
        raise APIError(400, f"Invalid tool request: {problem}.", param=_param_of(problem)) from None
    messages = conversation["messages"]
    while len(messages) > 1 and messages[0]["role"] == messages[1]["role"] == "system":
        # the template takes one system turn, first (as for plain messages)
        messages = [{**messages[0], "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}] + messages[2:]
    if not any(m["role"] == "user" for m in messages):
        raise APIError(400, "messages has no user message; add one with role 'user'.", param="messages")
    return messages, conversation.get("tools", [])


def offered_tools(tool_choice, tools: list[dict]) -> list[dict] | None:
    """The tools put in the prompt under `tool_choice`; None when the model is not to call any."""
    if tool_choice is None or tool_choice == "auto":
        return tools or None
    if tool_choice == "none":
        return None
    if not tools:
        raise APIError(400, "'tool_choice' is only allowed when 'tools' are given.", param="tool_choice")
    if tool_choice == "required" or isinstance(tool_choice, dict):
        raise APIError(400, f"tool_choice {tool_choice!r} is not supported: forcing a call needs constrained decoding, "
                            "which tunepilot serve does not do; use \"auto\" (the model decides) or \"none\".",
                       param="tool_choice")
    raise APIError(400, f"Invalid value for 'tool_choice': {tool_choice!r}; use \"auto\" or \"none\".",
                   param="tool_choice")


def reply_message(text: str, tools: list[dict] | None) -> dict:
    """The assistant message for a reply: plain text, or OpenAI `tool_calls` when the reply holds calls.

    `content` keeps any text around the calls (None when there is none), and blocks that looked like calls
    but could not be read stay in it, unparsed, so nothing the model wrote is lost.
    """
    if not tools:
        return {"role": "assistant", "content": text, "refusal": None}
    parsed = generation.tool_reply(text, tools)
    for problem in parsed.problems:
        log.warning("tool call left as text: %s", problem)
    if not parsed.tool_calls:
        return {"role": "assistant", "content": text, "refusal": None}
    calls = [{**call, "id": f"call_{uuid.uuid4().hex[:24]}"} for call in parsed.tool_calls]
    return {"role": "assistant", "content": parsed.content or None, "refusal": None, "tool_calls": calls}


@router.post("/v1/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    body.refuse_unsupported(tools_allowed=True)
    tools = None
    if body.uses_tools() or body.tool_choice is not None:
        messages, listed = tool_conversation(body)
        tools = offered_tools(body.tool_choice, listed)
    else:
        messages = normalize_messages(body.messages)
    stop = body.stop_list()
    handle = await acquire_model(request, body.model)
    prompt = generation.chat_prompt(handle.tokenizer, messages, tools=tools)
    params = body.sampling_params(prompt, handle, request.app.state.settings)
    completion_id, created = new_id("chatcmpl"), now()

    if body.stream:
        return sse_response(_chat_events(request, handle, prompt, params, stop, body, completion_id, created, tools))

    result = await request.app.state.batcher.submit(handle, prompt, params, stop, strip=True)
    message = reply_message(result.text, tools)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "system_fingerprint": None,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "tool_calls" if message.get("tool_calls") else result.finish_reason,
        }],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


async def _chat_events(request, handle, prompt, params, stop, body, completion_id, created, tools=None):
    def chunk(delta: dict, finish_reason: str | None) -> dict:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": body.model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    def reply_events(final: generation.Completion) -> tuple[list[dict], str]:
        # With tools the text was held back: send it now, then each call as one delta.tool_calls chunk.
        if not tools:
            return [], final.finish_reason
        message = reply_message(final.text, tools)
        events = [chunk({"content": message["content"]}, None)] if message["content"] else []
        for i, call in enumerate(message.get("tool_calls", [])):
            events.append(chunk({"tool_calls": [{"index": i, **call}]}, None))
        return events, "tool_calls" if message.get("tool_calls") else final.finish_reason

    def closing(final: generation.Completion) -> list[dict]:
        events, finish_reason = reply_events(final)
        events.append(chunk({}, finish_reason))
        if body.include_usage_in_stream:
            last = chunk({}, None)
            last["choices"] = []
            last["usage"] = usage(final.prompt_tokens, final.completion_tokens)
            events.append(last)
        return events

    def piece(text: str) -> dict | None:
        return None if tools else chunk({"content": text}, None)

    yield sse_event(chunk({"role": "assistant", "content": ""}, None))
    async for event in stream_events(request, handle, prompt, params, stop, strip=True,
                                     piece_event=piece, closing_events=closing):
        yield event
