"""POST /v1/completions: the legacy text-completion API. The prompt is raw text, no chat template."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import Field

from trainer.models import generation
from trainer.server.errors import APIError
from trainer.server.generation_routes import acquire_model, stream_events
from trainer.server.schemas import SamplingFields, new_id, now, usage
from trainer.server.streaming import sse_response

router = APIRouter()

MAX_PROMPTS = 16


class CompletionRequest(SamplingFields):
    prompt: str | list[str] = Field(..., description="Text to continue, or a list of texts (one choice each).")
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None


def _prompts(body: CompletionRequest) -> list[str]:
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not prompts:
        raise APIError(400, "'prompt' is an empty list; send a string or a list of strings.", param="prompt")
    if len(prompts) > MAX_PROMPTS:
        raise APIError(400, f"'prompt' has {len(prompts)} texts; send at most {MAX_PROMPTS} per request.",
                       param="prompt")
    if body.echo:
        raise APIError(400, "echo is not supported; the prompt is not repeated in the answer.", param="echo")
    if (body.best_of or 1) != 1:
        raise APIError(400, "best_of is not supported; leave it unset.", param="best_of")
    if body.suffix:
        raise APIError(400, "suffix (fill-in-the-middle) is not supported; leave it unset.", param="suffix")
    return prompts


@router.post("/v1/completions")
async def create_completion(body: CompletionRequest, request: Request):
    body.refuse_unsupported()
    texts = _prompts(body)
    stop = body.stop_list()
    handle = await acquire_model(request, body.model)
    prompts = [generation.raw_prompt(handle.tokenizer, t) for t in texts]
    # Each prompt is checked against the context; they share the sampling settings of the longest.
    params = [body.sampling_params(p, handle, request.app.state.settings) for p in prompts]
    completion_id, created = new_id("cmpl"), now()

    if body.stream:
        if len(prompts) != 1:
            raise APIError(400, "Streaming takes one prompt; send a single string.", param="prompt")
        return sse_response(_completion_events(request, handle, prompts[0], params[0], stop, body,
                                               completion_id, created))

    shared = min(params, key=lambda p: p.max_tokens)
    results = await asyncio.gather(*[
        request.app.state.batcher.submit(handle, p, shared, stop, strip=False) for p in prompts])
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": body.model,
        "system_fingerprint": None,
        "choices": [{"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
                    for i, r in enumerate(results)],
        "usage": usage(sum(r.prompt_tokens for r in results), sum(r.completion_tokens for r in results)),
    }


async def _completion_events(request, handle, prompt, params, stop, body, completion_id, created):
    def chunk(text: str, finish_reason: str | None) -> dict:
        return {"id": completion_id, "object": "text_completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}]}

    def closing(final: generation.Completion) -> list[dict]:
        events = [chunk("", final.finish_reason)]
        if body.include_usage_in_stream:
            events.append({"id": completion_id, "object": "text_completion", "created": created, "model": body.model,
                           "choices": [], "usage": usage(final.prompt_tokens, final.completion_tokens)})
        return events

    async for event in stream_events(request, handle, prompt, params, stop, strip=False,
                                     piece_event=lambda text: chunk(text, None), closing_events=closing):
        yield event
