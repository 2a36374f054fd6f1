"""Micro-batching with a fake generate(): concurrent requests share calls, and clients that come back
one by one are gathered into full batches instead of settling into small alternating ones."""

from __future__ import annotations

import asyncio
import time

from trainer.models import generation
from trainer.server import batching
from trainer.server.stats import GenerationStats


class FakeHandle:
    model_id = "m"
    model = object()
    adapter_name = None


def run_clients(monkeypatch, clients: int, rounds: int, generate_s: float, stagger_s: float, max_batch: int = 8):
    sizes: list[int] = []

    def fake_generate(handle, prompts, params, stops, strip=False):
        sizes.append(len(prompts))
        time.sleep(generate_s)
        return [generation.Completion(f"reply to {p.text}", 1, 2, "stop") for p in prompts]

    monkeypatch.setattr(batching.generation, "generate_batch", fake_generate)
    batcher = batching.MicroBatcher(max_batch, GenerationStats())
    params = generation.SamplingParams(max_tokens=4)
    replies: list[str] = []

    async def client(i: int) -> None:
        await asyncio.sleep(stagger_s * i)
        for r in range(rounds):
            prompt = generation.Prompt(f"{i}-{r}", False, 1)
            replies.append((await batcher.submit(FakeHandle(), prompt, params, [], strip=True)).text)
            await asyncio.sleep(0.001)  # the client's turnaround before its next request

    async def main():
        await asyncio.gather(*[client(i) for i in range(clients)])

    asyncio.run(main())
    return sizes, replies


def test_simultaneous_requests_share_one_generate_call(monkeypatch):
    sizes, replies = run_clients(monkeypatch, clients=4, rounds=1, generate_s=0.05, stagger_s=0)
    assert sizes == [4]
    assert sorted(replies) == [f"reply to {i}-0" for i in range(4)]  # each caller gets its own row


def test_staggered_clients_are_gathered_into_full_batches(monkeypatch):
    sizes, replies = run_clients(monkeypatch, clients=4, rounds=5, generate_s=0.5, stagger_s=0.01)
    assert sum(sizes) == 20 and len(replies) == 20
    assert sizes[0] == 1  # the first request never waits for company
    assert sizes.count(4) >= 3, sizes


def test_batching_off_runs_one_request_per_call(monkeypatch):
    sizes, _ = run_clients(monkeypatch, clients=3, rounds=2, generate_s=0.01, stagger_s=0, max_batch=1)
    assert sizes == [1] * 6
