"""What chat and text completions share: getting a model from the pool and streaming with counters."""

from __future__ import annotations

import threading
from typing import AsyncIterator, Callable, Iterator

import anyio
from fastapi import Request
from sse_starlette import ServerSentEvent

from trainer.models import generation
from trainer.models import registry as models
from trainer.server.errors import APIError, redact_paths
from trainer.server.model_access import check_model_name, shown
from trainer.server.model_pool import ModelHandle
from trainer.server.streaming import DONE_EVENT, iterate_in_thread, sse_event


def available_model_ids() -> list[str]:
    try:
        return [e.id for e in models.list_models()]
    except Exception:  # listing is only a hint in an error message; never mask the real error
        return []


async def acquire_model(request: Request, model_id: str) -> ModelHandle:
    """Load (or reuse) `model_id` off the event loop; unknown names are 404 with the available ids.

    Names outside the workspace's own are refused first (`trainer.server.model_access`).
    """
    allow_paths = request.app.state.settings.allow_local_paths
    check_model_name(model_id, allow_paths)
    pool = request.app.state.pool
    try:
        return await anyio.to_thread.run_sync(pool.acquire, model_id)
    except models.ModelError as exc:
        raise APIError(404, model_not_found_message(model_id, exc, allow_local_paths=allow_paths),
                       param="model", code="model_not_found") from None


def model_not_found_message(model_id: str, exc: Exception, allow_local_paths: bool = False) -> str:
    ids = ", ".join(available_model_ids()) or "none"
    text = redact_paths(str(exc))
    # The registry's own "Unknown model" text repeats the list; other failures (hub offline) say why.
    reason = "" if text.startswith("Unknown") else f" ({text})"
    also = "; a local transformers folder also works" if allow_local_paths else ""
    return f"The model {shown(model_id)} does not exist{reason}. Available models: {ids}{also}."


def counted_stream(request: Request, handle: ModelHandle, prompt: generation.Prompt,
                   params: generation.SamplingParams, stop: list[str], cancel: threading.Event,
                   strip: bool) -> Iterator:
    """`generation.stream` with the server's generation counters kept up to date."""
    stats = request.app.state.stats
    stats.started()
    final = None
    try:
        for item in generation.stream(handle, prompt, params, stop=stop, cancel=cancel, strip=strip):
            if isinstance(item, generation.Completion):
                final = item
            yield item
    finally:
        stats.ended(handle.model_id, final.finish_reason if final else "cancelled",
                    final.completion_tokens if final else 0, streamed=True)


async def stream_events(request: Request, handle: ModelHandle, prompt: generation.Prompt,
                        params: generation.SamplingParams, stop: list[str], strip: bool,
                        piece_event: Callable[[str], dict | None],
                        closing_events: Callable[[generation.Completion], list[dict]]) -> AsyncIterator[ServerSentEvent]:
    """The SSE body of a streamed generation: one event per text piece, the closing events, [DONE].

    Chat and text completions differ only in the shape of their chunks (`piece_event`,
    `closing_events`). A failure after the headers are sent is reported in-band, as OpenAI does.
    """
    cancel = threading.Event()
    final = None
    try:
        async for item in iterate_in_thread(
                lambda: counted_stream(request, handle, prompt, params, stop, cancel, strip=strip), cancel):
            if isinstance(item, generation.Completion):
                final = item
            elif item:
                payload = piece_event(item)
                if payload is not None:  # None: the route holds this text back (a tool call may be forming)
                    yield sse_event(payload)
    except Exception as exc:
        yield sse_event({"error": {"message": f"Generation failed ({type(exc).__name__}: {exc}).",
                                   "type": "server_error", "param": None, "code": "generation_failed"}})
        yield DONE_EVENT
        return
    for payload in closing_events(final):
        yield sse_event(payload)
    yield DONE_EVENT
