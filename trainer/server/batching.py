"""Micro-batching: concurrent non-streamed requests for the same model and sampling settings share
one `generate()` call.

No request waits on purpose: the first one starts at once; requests that arrive while a batch is
generating queue up and go together as the next batch (up to `max_batch_size` rows). On a CPU or
GPU one batched forward pass costs little more than a single one, so several clients get their
answers sooner than if they took turns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import anyio

from trainer.server import inference
from trainer.server.model_pool import ModelHandle
from trainer.server.stats import GenerationStats


@dataclass
class _Waiting:
    handle: ModelHandle
    prompt: inference.Prompt
    stop: list[str]
    future: asyncio.Future


class MicroBatcher:
    def __init__(self, max_batch_size: int, stats: GenerationStats):
        self.max_batch_size = max(1, max_batch_size)
        self.stats = stats
        self._waiting: dict[tuple, list[_Waiting]] = {}
        self._draining: dict[tuple, asyncio.Task] = {}

    async def submit(self, handle: ModelHandle, prompt: inference.Prompt, params: inference.SamplingParams,
                     stop: list[str], strip: bool) -> inference.Completion:
        # Rows can share a generate() call only when everything that shapes generation matches.
        key = (handle.model_id, id(handle.model), handle.adapter_name, prompt.add_special_tokens, params, strip)
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(_Waiting(handle, prompt, stop, future))
        if key not in self._draining:
            self._draining[key] = asyncio.create_task(self._drain(key, params, strip))
        return await future

    async def _drain(self, key: tuple, params: inference.SamplingParams, strip: bool) -> None:
        try:
            while self._waiting.get(key):
                queue = self._waiting[key]
                batch = [w for w in queue[: self.max_batch_size] if not w.future.cancelled()]
                del queue[: self.max_batch_size]
                if not batch:
                    continue
                await self._run(batch, params, strip)
        finally:
            # No await between the emptiness check above and this cleanup, so no request can slip in unseen.
            self._waiting.pop(key, None)
            self._draining.pop(key, None)

    async def _run(self, batch: list[_Waiting], params: inference.SamplingParams, strip: bool) -> None:
        handle = batch[0].handle
        for _ in batch:
            self.stats.started()
        results: list[inference.Completion] | None = None
        try:
            results = await anyio.to_thread.run_sync(
                lambda: inference.generate_batch(handle, [w.prompt for w in batch], params,
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
