"""Load a model by name (base, local folder or `ft:` adapter) and generate chat replies.

Used by `tunepilot chat-model`, the trainer's sample generations, the evals runner and the API
server, so that all of them format prompts and stop at end-of-turn the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from trainer.models import registry as models
from trainer.models.chat_format import render_prompt, stop_token_ids


@dataclass
class LoadedModel:
    name: str
    model: object
    tokenizer: object
    stop_ids: list[int]
    lock: threading.Lock


def pick_dtype(device: str, requested: str = "auto"):
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # On CPU, bf16 matmul is several times faster than fp32 where the CPU has AVX512-BF16/AMX.
    return torch.bfloat16 if _cpu_has_fast_bf16() else torch.float32


@lru_cache(maxsize=1)
def _cpu_has_fast_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load(name: str, device: str = "auto", dtype: str = "auto", merge_adapter: bool = False) -> LoadedModel:
    """Load (and cache) a model by any accepted name; `ft:` ids load the adapter on top of the base."""
    return _load_cached(name, pick_device(device), dtype, merge_adapter)


@lru_cache(maxsize=4)
def _load_cached(name: str, device: str, dtype: str, merge_adapter: bool) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = models.resolve(name)
    torch_dtype = pick_dtype(device, dtype)
    tokenizer_source = resolved.adapter_path if resolved.adapter_path and (resolved.adapter_path / "tokenizer_config.json").exists() else resolved.base_path
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    model = AutoModelForCausalLM.from_pretrained(str(resolved.base_path), dtype=torch_dtype)
    if resolved.adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(resolved.adapter_path))
        if merge_adapter:
            model = model.merge_and_unload()
    model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, stop_ids=stop_token_ids(tokenizer), lock=threading.Lock())


def clear_cache() -> None:
    _load_cached.cache_clear()


def build_messages(prompt: str, system: str | None = None, history: list[dict] | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    messages += list(history or [])
    messages.append({"role": "user", "content": prompt})
    return messages


def generate(loaded: LoadedModel, messages_batch: list[list[dict]], max_new_tokens: int = 128,
             temperature: float = 0.0, top_p: float = 1.0, stop: list[str] | None = None) -> list[str]:
    """Reply to several conversations in one batched call (left padding); greedy when temperature is 0."""
    import torch

    tok = loaded.tokenizer
    prompts = [render_prompt(tok, msgs) for msgs in messages_batch]
    # The rendered template already starts with BOS; adding special tokens again would double it.
    add_special = not getattr(tok, "chat_template", None)
    old_side = tok.padding_side
    tok.padding_side = "left"
    try:
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special)
    finally:
        tok.padding_side = old_side
    enc = {k: v.to(loaded.model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    sampling = temperature > 0
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=sampling, eos_token_id=loaded.stop_ids,
                  pad_token_id=tok.pad_token_id)
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    with loaded.lock, torch.inference_mode():
        out = loaded.model.generate(**enc, **kwargs)
    new_tokens = out[:, enc["input_ids"].shape[1]:]
    texts = [tok.decode(row, skip_special_tokens=True).strip() for row in new_tokens]
    if stop:
        texts = [_cut_at_stop(t, stop) for t in texts]
    return texts


def _cut_at_stop(text: str, stop: list[str]) -> str:
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if s and i != -1:
            cut = min(cut, i)
    return text[:cut]


def chat(name: str, prompt: str, system: str | None = None, max_new_tokens: int = 128, **kwargs) -> str:
    loaded = load(name)
    return generate(loaded, [build_messages(prompt, system)], max_new_tokens=max_new_tokens, **kwargs)[0]
