"""Server-sent events: run a blocking token generator in a thread and feed an async SSE response.

The response body is an async generator; when the client disconnects, Starlette cancels it, the
`finally` below sets the cancel event, and the generation thread stops at its next token. Each
event is `data: {json}` and the stream ends with `data: [DONE]`, as OpenAI's streaming API does.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, AsyncIterator, Callable, Iterator

from fastapi.responses import StreamingResponse

DONE_EVENT = "data: [DONE]\n\n"


def sse_event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    # no-cache and no proxy buffering, so every token reaches the client as it is made.
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def iterate_in_thread(make_iterator: Callable[[], Iterator[Any]], cancel: threading.Event) -> AsyncIterator[Any]:
    """Drive a blocking iterator in its own thread and yield its items on the event loop.

    If the consumer stops early (cancelled by a disconnect, or closed), `cancel` is set so the
    blocking side can wind down; the thread still runs the iterator to its end (which is quick
    once cancelled) so locks and counters are released in order.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def deliver(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed (server shutting down): nobody to tell
            pass

    def pump() -> None:
        try:
            for item in make_iterator():
                deliver("item", item)
        except BaseException as exc:  # re-raised on the event loop side
            deliver("error", exc)
        finally:
            deliver("done", None)

    threading.Thread(target=pump, name="tunepilot-sse", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        cancel.set()
