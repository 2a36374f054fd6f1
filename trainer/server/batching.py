"""Micro-batching: concurrent non-streamed requests for the same model and sampling settings share
one `generate()` call.

The first request starts at once; requests that arrive while a batch is generating queue up and
go together as the next batch (up to `max_batch_size` rows). On a CPU or GPU one batched forward
pass costs little more than a single one, so several clients get their answers sooner than if
they took turns.

Left alone, N clients that each send again as soon as they get an answer settle into alternating
small batches (e.g. 2 and 2 for four clients: each group's next requests land while the other
group generates). So the batcher remembers how many requests were in play during the previous
batch (its rows plus those that queued meanwhile), and when fewer are waiting it lingers for the
rest to come back: at most a quarter of the previous batch's generation time (capped at
`max_linger_s`). A client's turnaround (response out, next request parsed, prompt rendered) took
0.2-1 s on a busy 2-core machine against 1.5-3 s batches, so a smaller window kept missing it. The
wait only happens right after a batch with more requests in play than are now waiting, and the
count is refreshed every batch, so after a burst it costs at most one shortened wait. A lone
sequential client never triggers it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import anyio

from trainer.models import generation
from trainer.server.model_pool import ModelHandle
from trainer.server.stats import GenerationStats


@dataclass
class _Waiting:
    handle: ModelHandle
    prompt: generation.Prompt
    stop: list[str]
    future: asyncio.Future


class MicroBatcher:
    LINGER_FRACTION = 0.25

    def __init__(self, max_batch_size: int, stats: GenerationStats, max_linger_s: float = 1.0):
        self.max_batch_size = max(1, max_batch_size)
        self.stats = stats
        self.max_linger_s = max_linger_s
        self._waiting: dict[tuple, list[_Waiting]] = {}
        self._draining: dict[tuple, asyncio.Task] = {}
        # key -> (requests in play during the last batch, when it finished, seconds it took)
        self._last_batch: dict[tuple, tuple[int, float, float]] = {}

    async def submit(self, handle: ModelHandle, prompt: generation.Prompt, params: generation.SamplingParams,
                     stop: list[str], strip: bool) -> generation.Completion:
        # Rows can share a generate() call only when everything that shapes generation matches.
        key = (handle.model_id, id(handle.model), handle.adapter_name, prompt.add_special_tokens, params, strip)
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(_Waiting(handle, prompt, stop, future))
        if key not in self._draining:
            self._draining[key] = asyncio.create_task(self._drain(key, params, strip))
        return await future

    async def _drain(self, key: tuple, params: generation.SamplingParams, strip: bool) -> None:
        try:
            while self._waiting.get(key):
                await self._linger(key)
                queue = self._waiting[key]
                batch = [w for w in queue[: self.max_batch_size] if not w.future.cancelled()]
                del queue[: self.max_batch_size]
                if not batch:
                    continue
                started = time.monotonic()
                await self._run(batch, params, strip)
                in_play = len(batch) + len(self._waiting.get(key, ()))
                self._last_batch[key] = (in_play, time.monotonic(), time.monotonic() - started)
        finally:
            # No await between the emptiness check above and this cleanup, so no request can slip in unseen.
            self._waiting.pop(key, None)
            self._draining.pop(key, None)
            stale = time.monotonic() - 2.0
            for old in [k for k, (_, when, _) in self._last_batch.items() if when < stale]:
                del self._last_batch[old]

    async def _linger(self, key: tuple) -> None:
        """Wait briefly for the clients of the previous batch to send again, so they batch together."""
        in_play, finished, took = self._last_batch.get(key, (0, 0.0, 0.0))
        target = min(in_play, self.max_batch_size)
        if self.max_batch_size == 1 or time.monotonic() - finished > 2.0:
            return  # batching off, or no recent concurrent load on this model
        deadline = time.monotonic() + min(self.max_linger_s, self.LINGER_FRACTION * took)
        while len(self._waiting.get(key, ())) < target and time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    async def _run(self, batch: list[_Waiting], params: generation.SamplingParams, strip: bool) -> None:
        handle = batch[0].handle
        for _ in batch:
            self.stats.started()
        results: list[generation.Completion] | None = None
        try:
            results = await anyio.to_thread.run_sync(
                lambda: generation.generate_batch(handle, [w.prompt for w in batch], params,
                                                  [w.stop for w in batch], strip=strip))
        except Exception as exc:
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(exc)
        finally:
            self.stats.batch(len(batch))
            for i, _ in enumerate(batch):
                r = results[i] if results else None
                self.stats.ended(handle.model_id, r.finish_reason if r else "error",
                                 r.completion_tokens if r else 0, streamed=False)
        if results is not None:
            for w, r in zip(batch, results):
                if not w.future.done():
                    w.future.set_result(r)
