"""Generation for the API: batched replies with token usage and finish reasons, and token streaming.

`trainer.models.generation.generate` returns only text; an OpenAI-style answer also needs the token counts
and whether the model stopped by itself ("stop") or ran out of `max_tokens` ("length"), and
`/v1/completions` continues raw text with no chat template. Prompts are rendered with the same
`trainer.models.chat_format.render_prompt` as everywhere else, so replies match `tunepilot chat-model`.

Streaming uses transformers' `TextIteratorStreamer` with `generate()` in a worker thread; a
`StoppingCriteria` watches a `threading.Event`, so a caller that goes away (client disconnect) stops
the generation within one token.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Iterator

from trainer.models.chat_format import has_chat_template, render_prompt
from trainer.server.model_pool import ModelHandle


@dataclass(frozen=True)
class SamplingParams:
    """How to sample; frozen and hashable because it is part of the micro-batching key."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    # vLLM's `ignore_eos` extension: keep generating to max_tokens (benchmarks, load tests).
    ignore_eos: bool = False


@dataclass
class Prompt:
    text: str
    # Rendered chat templates already start with BOS; raw completion text needs it added.
    add_special_tokens: bool
    token_count: int


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length | cancelled (the caller went away)


# A fast tokenizer is one Rust object that panics ("Already borrowed") when two threads use it while
# one of them changes its padding settings; requests tokenize on the event loop and decode in worker
# threads, so every use of a tokenizer here goes through its own lock.
_TOKENIZER_LOCKS: "weakref.WeakKeyDictionary[object, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def tokenizer_lock(tokenizer) -> threading.Lock:
    with _LOCKS_GUARD:
        lock = _TOKENIZER_LOCKS.get(tokenizer)
        if lock is None:
            lock = _TOKENIZER_LOCKS[tokenizer] = threading.Lock()
        return lock


def _tokenize(tokenizer, texts, add_special_tokens: bool, **kwargs):
    # Always the same padding settings, so the tokenizer's state never has to flip between calls.
    with tokenizer_lock(tokenizer):
        return tokenizer(texts, padding=True, padding_side="left", add_special_tokens=add_special_tokens, **kwargs)


def _decode(tokenizer, ids) -> str:
    with tokenizer_lock(tokenizer):
        return tokenizer.decode(ids, skip_special_tokens=True)


def chat_prompt(tokenizer, messages: list[dict]) -> Prompt:
    text = render_prompt(tokenizer, messages)
    add_special = not has_chat_template(tokenizer)
    return Prompt(text, add_special, _count(tokenizer, text, add_special))


def raw_prompt(tokenizer, text: str) -> Prompt:
    return Prompt(text, True, _count(tokenizer, text, True))


def _count(tokenizer, text: str, add_special: bool) -> int:
    return len(_tokenize(tokenizer, text, add_special)["input_ids"])


def _encode(handle: ModelHandle, prompts: list[Prompt]) -> dict:
    # Left padding: decoder-only models continue from the right edge.
    enc = _tokenize(handle.tokenizer, [p.text for p in prompts], prompts[0].add_special_tokens, return_tensors="pt")
    device = handle.model.device
    return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


def _generate_kwargs(handle: ModelHandle, params: SamplingParams) -> dict:
    kwargs = dict(max_new_tokens=params.max_tokens, eos_token_id=handle.stop_ids,
                  pad_token_id=handle.tokenizer.pad_token_id)
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
    else:
        # Greedy; clear the model's own sampling defaults so transformers does not warn about them.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if params.ignore_eos:
        kwargs["min_new_tokens"] = params.max_tokens  # suppresses end-of-turn until max_tokens
    return kwargs


def cut_at_stop(text: str, stop: list[str] | tuple[str, ...]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i != -1), default=-1)
    return (text[:cut], True) if cut != -1 else (text, False)


def generate_batch(handle: ModelHandle, prompts: list[Prompt], params: SamplingParams,
                   stops: list[list[str]] | None = None, strip: bool = False) -> list[Completion]:
    """One generate() call for several prompts that share the sampling settings."""
    import torch

    stops = stops or [[] for _ in prompts]
    enc = _encode(handle, prompts)
    prompt_len = enc["input_ids"].shape[1]
    with handle.lock, handle.activated() as model, torch.inference_mode():
        if params.seed is not None:
            torch.manual_seed(params.seed)
        out = model.generate(**enc, **_generate_kwargs(handle, params))
    stop_ids = set(handle.stop_ids)
    results = []
    for row, prompt, stop in zip(out[:, prompt_len:].tolist(), prompts, stops):
        end = next((i for i, t in enumerate(row) if t in stop_ids), None)
        finish = "stop" if end is not None else "length"
        generated = row[: end + 1] if end is not None else row
        text = _decode(handle.tokenizer, row[:end] if end is not None else row)
        if strip:
            text = text.strip()
        text, hit = cut_at_stop(text, stop)
        results.append(Completion(text, prompt.token_count, len(generated), "stop" if hit else finish))
    return results


def stream(handle: ModelHandle, prompt: Prompt, params: SamplingParams, stop: list[str] | None = None,
           cancel: threading.Event | None = None, strip: bool = False) -> Iterator[str | Completion]:
    """Yield text pieces as they are generated, then one final `Completion` (the whole text and usage).

    Set `cancel` (or close the generator) to stop generating; the final item then has
    finish_reason "cancelled". Stop strings are never emitted: text that could be the start of
    one is held back until it is clear.
    """
    import torch
    from transformers import (
        StoppingCriteria,
        StoppingCriteriaList,
        TextIteratorStreamer,
    )

    stop = [s for s in (stop or []) if s]
    cancel = cancel or threading.Event()
    halt = threading.Event()  # our own stop (a stop string was seen)
    enc = _encode(handle, [prompt])
    prompt_len = enc["input_ids"].shape[1]

    class _Watch(StoppingCriteria):
        def __init__(self):
            self.generated = 0
            self.last_token: int | None = None

        def __call__(self, input_ids, scores, **kwargs):
            self.generated = input_ids.shape[1] - prompt_len
            self.last_token = int(input_ids[0, -1]) if self.generated else None
            flag = cancel.is_set() or halt.is_set()
            return torch.full((input_ids.shape[0],), flag, dtype=torch.bool, device=input_ids.device)

    watch = _Watch()
    lock = tokenizer_lock(handle.tokenizer)

    class _LockedStreamer(TextIteratorStreamer):
        """Decodes new tokens under the tokenizer's lock (it runs in the generate() thread)."""

        def put(self, value):
            with lock:
                super().put(value)

        def end(self):
            with lock:
                super().end()

    streamer = _LockedStreamer(handle.tokenizer, skip_prompt=True, skip_special_tokens=True)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with handle.lock:
                if cancel.is_set():  # the client left while we waited for the model
                    return
                with handle.activated() as model, torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    model.generate(**enc, **_generate_kwargs(handle, params), streamer=streamer,
                                   stopping_criteria=StoppingCriteriaList([watch]))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            failures.append(exc)
        finally:
            streamer.end()  # wakes the consumer even when generate() failed before starting

    worker = threading.Thread(target=run, name="tunepilot-stream", daemon=True)
    worker.start()
    holdback = max((len(s) for s in stop), default=1) - 1
    raw, emitted, stopped_by_string = "", 0, False
    try:
        for piece in streamer:
            raw += piece
            visible = raw.lstrip() if strip else raw
            visible, hit = cut_at_stop(visible, stop)
            if hit:
                stopped_by_string = True
                halt.set()
                break
            safe = len(visible) - holdback
            if strip:
                safe = min(safe, len(visible.rstrip()))  # trailing spaces wait until more text comes
            if safe > emitted:
                yield visible[emitted:safe]
                emitted = safe
            if cancel.is_set():
                break
    except GeneratorExit:
        halt.set()  # the consumer is gone: stop generating, do not wait
        raise
    worker.join()
    if failures:
        raise failures[0]
    visible = raw.lstrip() if strip else raw
    visible, hit = cut_at_stop(visible, stop)
    if strip:
        visible = visible.rstrip()
    if len(visible) > emitted and not cancel.is_set():
        yield visible[emitted:]
    if cancel.is_set():
        finish = "cancelled"
    elif hit or stopped_by_string or watch.last_token in handle.stop_ids:
        finish = "stop"
    elif watch.generated >= params.max_tokens:
        finish = "length"
    else:
        finish = "stop"
    yield Completion(visible, prompt.token_count, watch.generated, finish)
