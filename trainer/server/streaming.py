"""Server-sent events: run a blocking token generator in a thread and feed an async SSE response.

The response is sse-starlette's `EventSourceResponse`. It watches for the client's disconnect and
then cancels the body (an async generator); the `finally` in `iterate_in_thread` sets the cancel
event, and the generation thread stops at its next token. Each event is `data: {json}` followed by
a blank line, and the stream ends with `data: [DONE]`, as OpenAI's streaming API does; so lines end
in `\n` (sse-starlette's default is `\r\n`) and there are no keep-alive ping comments (clients of
OpenAI-compatible servers that read every non-empty line as `data: ...` would choke on them).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, AsyncIterator, Callable, Iterator

from sse_starlette import EventSourceResponse, ServerSentEvent

_SEP = "\n"

DONE_EVENT = ServerSentEvent(data="[DONE]", sep=_SEP)


def sse_event(payload: dict) -> ServerSentEvent:
    # JSON never holds a raw line break (json.dumps escapes them), so each event is one `data:` line.
    return ServerSentEvent(data=json.dumps(payload, ensure_ascii=False), sep=_SEP)


def sse_response(events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    # no-cache (as before; sse-starlette would send no-store) and no proxy buffering, so every
    # token reaches the client as it is made; ping=0: no keep-alive comments (see above).
    return EventSourceResponse(events, sep=_SEP, ping=0, headers={"Cache-Control": "no-cache"})


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
