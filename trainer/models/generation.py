"""The one generation stack: load a model by name (base, local folder or `ft:` adapter), render
prompts, and generate, batched or streamed, with token usage and finish reasons.

Used by `tunepilot chat-model`, the trainer's sample generations, the evals runner, the UI and the
API server (whose model pool hands `generate_batch` and `stream` its own handles), so all of them
format prompts, stop at end-of-turn and lock the same way. Prompts are rendered with
`trainer.models.chat_format.render_prompt` (tools and tool turns included, as in training);
`raw_prompt` continues plain text with no template
(`/v1/completions`). Device and dtype come from `trainer.models.device`.

Locking (why): a fast tokenizer is one Rust object that panics ("Already borrowed") when two
threads use it while one of them changes its padding settings. The UI's eval thread and its chat
share one loaded model, and the server tokenizes on the event loop while it decodes in worker
threads. So every use of a tokenizer here goes through that tokenizer's own lock and always passes
the same settings (left padding as a call argument: the tokenizer's state is never flipped), and
`generate()` runs under the model's lock. The tokenizer lock is separate from the model lock so
that tokenizing a new request never waits for another request's whole generation.

Streaming uses transformers' `TextIteratorStreamer` with `generate()` in a worker thread; a
`StoppingCriteria` watches a `threading.Event`, so a caller that goes away (client disconnect)
stops the generation within one token.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from trainer.models import registry as models
from trainer.models.chat_format import (
    ToolReply,
    has_chat_template,
    parse_tool_calls,
    render_prompt,
    stop_token_ids,
)
from trainer.models.device import pick_device, pick_dtype

# ---------------------------------------------------------------- what generation works on


class GenerationTarget(Protocol):
    """What `generate_batch` and `stream` need: a `LoadedModel`, or the server pool's `ModelHandle`."""

    model: Any
    tokenizer: Any
    stop_ids: list[int]
    lock: threading.Lock

    def activated(self) -> AbstractContextManager[Any]:
        """The model ready to generate (the server selects an adapter here); the caller holds `lock`."""


@dataclass
class LoadedModel:
    name: str
    model: object
    tokenizer: object
    stop_ids: list[int]
    lock: threading.Lock

    @contextmanager
    def activated(self) -> Iterator[Any]:
        yield self.model


@dataclass(frozen=True)
class SamplingParams:
    """How to sample; frozen and hashable because it is part of the server's micro-batching key."""

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


# ---------------------------------------------------------------- loading

def load(name: str, device: str = "auto", dtype: str = "auto", merge_adapter: bool = False) -> LoadedModel:
    """Load (and cache) a model by any accepted name; `ft:` ids load the adapter on top of the base."""
    return _load_cached(name, pick_device(device), dtype, merge_adapter)


@lru_cache(maxsize=4)
def _load_cached(name: str, device: str, dtype: str, merge_adapter: bool) -> LoadedModel:
    resolved = models.resolve(name)
    adapter = resolved.adapter_path
    tokenizer = load_tokenizer(adapter if adapter is not None and has_tokenizer(adapter) else resolved.base_path)
    model = load_causal_lm(resolved.base_path, device, dtype, adapter_path=adapter, merge_adapter=merge_adapter)
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, stop_ids=stop_token_ids(tokenizer),
                       lock=threading.Lock())


def clear_cache() -> None:
    _load_cached.cache_clear()


def has_tokenizer(folder: str | Path) -> bool:
    """Whether `folder` saved its own tokenizer (an adapter trained with added tokens does)."""
    return (Path(folder) / "tokenizer_config.json").exists()


# Model types whose tokenizers shipped the pre-tokenizer regex that transformers 4.57 repairs.
_MISTRAL_TYPES = {"mistral", "mistral3", "voxtral", "ministral", "pixtral"}


def _mistral_regex_kwargs(folder: str | Path) -> dict:
    """`fix_mistral_regex=False` for a local folder of any other model type.

    transformers 4.57.3-4.57.x treats every local folder saved by those versions as a Mistral
    tokenizer and warns "incorrect regex pattern ... set fix_mistral_regex=True" on each load,
    Gemma included. Gemma's pre-tokenizer splits on spaces and has no such regex, so the warning is
    a false alarm there (and the suggested fix would replace Gemma's pre-tokenizer). Saying False
    explicitly silences it; real Mistral folders keep transformers' own handling.
    """
    config = Path(folder) / "config.json"
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return {}
    return {} if model_type in _MISTRAL_TYPES or model_type is None else {"fix_mistral_regex": False}


def load_tokenizer(folder: str | Path, trust_remote_code: bool = False):
    """The tokenizer saved in `folder`, with a pad token (generation and training both pad batches)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code,
                                              **_mistral_regex_kwargs(folder))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # batched generation pads; EOS is never attended to
    return tokenizer


def load_causal_lm(base_path: str | Path, device: str, dtype: str = "auto", vocab_size: int | None = None,
                   adapter_path: str | Path | None = None, merge_adapter: bool = False):
    """The base weights in the device's dtype (`trainer.models.device`), optionally with a LoRA adapter
    (merged or not) or resized embeddings, moved to `device` and in eval mode."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=pick_dtype(device, dtype))
    if vocab_size and model.get_input_embeddings().weight.shape[0] != vocab_size:
        model.resize_token_embeddings(vocab_size)
    if adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_path))
        if merge_adapter:
            model = model.merge_and_unload()
    model.to(device)
    model.eval()
    return model


# ---------------------------------------------------------------- tokenizing (locked)

_TOKENIZER_LOCKS: weakref.WeakKeyDictionary[object, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def tokenizer_lock(tokenizer) -> threading.Lock:
    """The lock every use of `tokenizer` holds (see the module docstring)."""
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


def build_messages(prompt: str, system: str | None = None, history: list[dict] | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    messages += list(history or [])
    messages.append({"role": "user", "content": prompt})
    return messages


def chat_prompt(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> Prompt:
    """The prompt for a conversation; `tools` (OpenAI's shape) and tool turns are rendered exactly as in
    training (`trainer.models.chat_format`), so a tool-calling fine-tune is asked the way it learned."""
    text = render_prompt(tokenizer, messages, tools=tools)
    # The rendered template already starts with BOS; adding special tokens again would double it.
    add_special = not has_chat_template(tokenizer)
    return Prompt(text, add_special, _count(tokenizer, text, add_special))


def raw_prompt(tokenizer, text: str) -> Prompt:
    return Prompt(text, True, _count(tokenizer, text, True))


def token_ids(tokenizer, text: str, add_special_tokens: bool) -> list[int]:
    """`tokenizer(text)["input_ids"]` under the tokenizer's lock, for code that shares a loaded model
    (evals' perplexity next to the UI's chat): an unlocked call with other padding settings is the
    "Already borrowed" race."""
    return _tokenize(tokenizer, text, add_special_tokens)["input_ids"]


def _count(tokenizer, text: str, add_special: bool) -> int:
    return len(token_ids(tokenizer, text, add_special))


def _encode(target: GenerationTarget, prompts: list[Prompt]) -> dict:
    # Left padding: decoder-only models continue from the right edge.
    enc = _tokenize(target.tokenizer, [p.text for p in prompts], prompts[0].add_special_tokens, return_tensors="pt")
    device = target.model.device
    return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


def _generate_kwargs(target: GenerationTarget, params: SamplingParams) -> dict:
    kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens, "eos_token_id": target.stop_ids,
                              "pad_token_id": target.tokenizer.pad_token_id}
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


# ---------------------------------------------------------------- generating

def generate(loaded: GenerationTarget, messages_batch: list[list[dict]], max_new_tokens: int = 128,
             temperature: float = 0.0, top_p: float = 1.0, stop: list[str] | None = None,
             tools: list[dict] | None = None) -> list[str]:
    """Reply to several conversations in one batched call; greedy when temperature is 0.

    With `tools`, every conversation is offered those tools; read calls out of a reply with `tool_reply`."""
    if not messages_batch:
        return []
    prompts = [chat_prompt(loaded.tokenizer, messages, tools=tools) for messages in messages_batch]
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    stops = [list(stop or []) for _ in prompts]
    return [c.text for c in generate_batch(loaded, prompts, params, stops, strip=True)]


def chat(name: str, prompt: str, system: str | None = None, max_new_tokens: int = 128, **kwargs) -> str:
    loaded = load(name)
    return generate(loaded, [build_messages(prompt, system)], max_new_tokens=max_new_tokens, **kwargs)[0]


def tool_reply(text: str, tools: list[dict] | None = None) -> ToolReply:
    """A generated reply split into text and OpenAI-shaped `tool_calls` (the format training rendered)."""
    return parse_tool_calls(text, tools)


def generate_batch(target: GenerationTarget, prompts: list[Prompt], params: SamplingParams,
                   stops: list[list[str]] | None = None, strip: bool = False) -> list[Completion]:
    """One generate() call for several prompts that share the sampling settings."""
    import torch

    stops = stops or [[] for _ in prompts]
    enc = _encode(target, prompts)
    prompt_len = enc["input_ids"].shape[1]
    with target.lock, target.activated() as model, torch.inference_mode():
        if params.seed is not None:
            torch.manual_seed(params.seed)
        out = model.generate(**enc, **_generate_kwargs(target, params))
    stop_ids = set(target.stop_ids)
    results = []
    for row, prompt, stop in zip(out[:, prompt_len:].tolist(), prompts, stops):
        end = next((i for i, t in enumerate(row) if t in stop_ids), None)
        finish = "stop" if end is not None else "length"
        generated = row[: end + 1] if end is not None else row
        text = _decode(target.tokenizer, row[:end] if end is not None else row)
        if strip:
            text = text.strip()
        text, hit = cut_at_stop(text, stop)
        results.append(Completion(text, prompt.token_count, len(generated), "stop" if hit else finish))
    return results


def stream(target: GenerationTarget, prompt: Prompt, params: SamplingParams, stop: list[str] | None = None,
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
    enc = _encode(target, [prompt])
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
    lock = tokenizer_lock(target.tokenizer)

    class _LockedStreamer(TextIteratorStreamer):
        """Decodes new tokens under the tokenizer's lock (it runs in the generate() thread)."""

        def put(self, value):
            with lock:
                super().put(value)

        def end(self):
            with lock:
                super().end()

    streamer = _LockedStreamer(target.tokenizer, skip_prompt=True, skip_special_tokens=True)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with target.lock:
                if cancel.is_set():  # the client left while we waited for the model
                    return
                with target.activated() as model, torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    model.generate(**enc, **_generate_kwargs(target, params), streamer=streamer,
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
    elif hit or stopped_by_string or watch.last_token in target.stop_ids:
        finish = "stop"
    elif watch.generated >= params.max_tokens:
        finish = "length"
    else:
        finish = "stop"
    yield Completion(visible, prompt.token_count, watch.generated, finish)
