"""POST /v1/chat/completions: OpenAI's chat API on base and fine-tuned models, streamed or not.

Messages are rendered with the model's chat template (Gemma's turn format for the built-in model),
exactly as in `tunepilot chat-model`, so a fine-tuned model answers the way it was trained.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from trainer.models import generation
from trainer.server.errors import APIError
from trainer.server.generation_routes import acquire_model, stream_events
from trainer.server.schemas import SamplingFields, new_id, now, usage
from trainer.server.streaming import sse_event, sse_response

router = APIRouter()

# "developer" is OpenAI's newer name for the system role.
_ROLE_MAP = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)


def normalize_messages(messages: list[ChatMessage]) -> list[dict]:
    """OpenAI messages -> plain {"role", "content"} text turns; leading system turns are merged."""
    out: list[dict] = []
    for i, m in enumerate(messages):
        role = _ROLE_MAP.get(m.role)
        if role is None:
            raise APIError(400, f"messages[{i}].role {m.role!r} is not supported; use system, developer, user "
                                "or assistant (tool messages need tool calling, which is not supported).",
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


@router.post("/v1/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    body.refuse_unsupported()
    messages = normalize_messages(body.messages)
    stop = body.stop_list()
    handle = await acquire_model(request, body.model)
    prompt = generation.chat_prompt(handle.tokenizer, messages)
    params = body.sampling_params(prompt, handle, request.app.state.settings)
    completion_id, created = new_id("chatcmpl"), now()

    if body.stream:
        return sse_response(_chat_events(request, handle, prompt, params, stop, body, completion_id, created))

    result = await request.app.state.batcher.submit(handle, prompt, params, stop, strip=True)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "system_fingerprint": None,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result.text, "refusal": None},
            "logprobs": None,
            "finish_reason": result.finish_reason,
        }],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


async def _chat_events(request, handle, prompt, params, stop, body, completion_id, created):
    def chunk(delta: dict, finish_reason: str | None) -> dict:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": body.model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    def closing(final: generation.Completion) -> list[dict]:
        events = [chunk({}, final.finish_reason)]
        if body.include_usage_in_stream:
            last = chunk({}, None)
            last["choices"] = []
            last["usage"] = usage(final.prompt_tokens, final.completion_tokens)
            events.append(last)
        return events

    yield sse_event(chunk({"role": "assistant", "content": ""}, None))
    async for event in stream_events(request, handle, prompt, params, stop, strip=True,
                                     piece_event=lambda text: chunk({"content": text}, None), closing_events=closing):
        yield event
