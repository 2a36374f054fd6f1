"""Loaded models kept within a memory budget; the least recently used weights are evicted first.

A fine-tuned LoRA model does not get its own copy of the base weights: its adapter is attached to
the already loaded base under an internal name, and each request switches the active adapter (or
disables adapters for plain base requests) while it holds that base's lock. An adapter can only
share a base when its tokenizer has the same vocabulary; otherwise it gets a dedicated copy.

The pool talks to weights only through a small backend (`TransformersBackend` in production), so
eviction and sharing are unit-tested with fakes.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from trainer.models import registry as models
from trainer.models.device import (
    free_memory_bytes,
    pick_device,
    pick_dtype,
    release_cached_memory,
)
from trainer.models.generation import has_tokenizer, load_causal_lm, load_tokenizer

log = logging.getLogger("tunepilot.server")

MAX_ADAPTERS_PER_BASE = 16


@dataclass
class _Slot:
    """One set of weights in memory, plus the adapters attached to it."""

    key: str
    model: Any
    tokenizer: Any
    base_bytes: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    dedicated: bool = False  # a private base copy for one adapter whose vocabulary differs
    adapters: dict[str, "_Entry"] = field(default_factory=dict)  # model id -> entry
    last_used: float = field(default_factory=time.monotonic)

    @property
    def total_bytes(self) -> int:
        return self.base_bytes + sum(e.nbytes for e in self.adapters.values())


@dataclass
class _Entry:
    model_id: str
    slot_key: str
    signature: tuple  # where the weights came from; a re-registered id with new paths reloads
    tokenizer: Any
    adapter_name: str | None = None
    nbytes: int = 0
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class ModelHandle:
    """What a request needs to generate with one model id (a `trainer.models.generation.GenerationTarget`).
    Hold `lock` around `activated()`."""

    model_id: str
    model: Any
    tokenizer: Any
    stop_ids: list[int]
    lock: threading.Lock
    adapter_name: str | None
    context_length: int | None
    _backend: Any = None

    @contextmanager
    def activated(self) -> Iterator[Any]:
        """Select this id's adapter (or the bare base) on the shared weights; caller holds `lock`."""
        self._backend.activate(self.model, self.adapter_name)
        yield self.model


class ModelPool:
    def __init__(self, budget_bytes: int, backend: Any | None = None):
        self.budget_bytes = int(budget_bytes)
        self.backend = backend or TransformersBackend()
        self._lock = threading.RLock()
        self._slots: dict[str, _Slot] = {}
        self._entries: dict[str, _Entry] = {}
        self._adapter_counter = 0

    # ------------------------------------------------------------ public

    def acquire(self, model_id: str) -> ModelHandle:
        """Return a handle for `model_id`, loading (and evicting others) as needed.

        Raises `trainer.models.registry.ModelError` for names that do not resolve. The registry is asked on
        every call, so a model deleted elsewhere (e.g. `tunepilot models delete`) stops working here too.
        """
        with self._lock:
            try:
                resolved = self.backend.resolve(model_id)
            except models.ModelError:
                self._drop_locked(model_id)
                raise
            signature = (str(resolved.base_path), str(resolved.adapter_path or ""))
            entry = self._entries.get(model_id)
            if entry is not None and entry.signature != signature:
                self._drop_locked(model_id)
                entry = None
            if entry is None:
                entry = self._load_entry(model_id, resolved, signature)
            slot = self._slots[entry.slot_key]
            now = time.monotonic()
            entry.last_used = slot.last_used = now
            return ModelHandle(
                model_id=model_id, model=slot.model, tokenizer=entry.tokenizer,
                stop_ids=self.backend.stop_ids(entry.tokenizer), lock=slot.lock,
                adapter_name=entry.adapter_name, context_length=self.backend.context_length(slot.model),
                _backend=self.backend,
            )

    def drop(self, model_id: str) -> bool:
        """Forget a model id (e.g. after it was deleted); frees its adapter or its weights."""
        with self._lock:
            return self._drop_locked(model_id)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(s.total_bytes for s in self._slots.values())

    def status(self) -> dict:
        with self._lock:
            return {
                "budget_bytes": self.budget_bytes,
                "used_bytes": sum(s.total_bytes for s in self._slots.values()),
                "loaded": [
                    {"weights": s.key, "bytes": s.total_bytes,
                     "models": sorted(e.model_id for e in self._entries.values() if e.slot_key == s.key)}
                    for s in sorted(self._slots.values(), key=lambda s: s.last_used)
                ],
            }

    def loaded_model_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    # ------------------------------------------------------------ loading

    def _load_entry(self, model_id: str, resolved, signature: tuple) -> _Entry:
        base_key = str(resolved.base_path)
        if resolved.adapter_path is None:
            slot = self._slots.get(base_key) or self._load_slot(base_key, resolved.base_path)
            entry = _Entry(model_id, slot.key, signature, slot.tokenizer)
            self._entries[model_id] = entry
            return entry

        adapter_tokenizer = self.backend.load_adapter_tokenizer(resolved.adapter_path)
        slot = self._slots.get(base_key)
        if slot is None:
            slot = self._load_slot(base_key, resolved.base_path)
        if not self.backend.can_share(slot.tokenizer, adapter_tokenizer):
            # A different vocabulary needs resized embeddings: give this adapter its own copy.
            key = f"{base_key}+{resolved.adapter_path}"
            slot = self._slots.get(key) or self._load_slot(key, resolved.base_path, vocab_size=len(adapter_tokenizer))
            slot.dedicated = True
        if len(slot.adapters) >= MAX_ADAPTERS_PER_BASE:
            oldest = min(slot.adapters.values(), key=lambda e: e.last_used)
            self._drop_locked(oldest.model_id)
        self._adapter_counter += 1
        # peft stores adapters in module dicts, whose keys may not contain dots: use our own names.
        name = f"tp_adapter_{self._adapter_counter}"
        with slot.lock:
            nbytes = self.backend.attach_adapter(slot.model, resolved.adapter_path, name)
        entry = _Entry(model_id, slot.key, signature, adapter_tokenizer or slot.tokenizer, name, nbytes)
        slot.adapters[model_id] = entry
        self._entries[model_id] = entry
        self._evict_to_fit(keep=slot.key, incoming=0)
        return entry

    def _load_slot(self, key: str, base_path: Path, vocab_size: int | None = None) -> _Slot:
        estimate = self.backend.estimate_bytes(base_path)
        self._evict_to_fit(keep=None, incoming=estimate)
        model, tokenizer = self.backend.load_base(base_path, vocab_size=vocab_size)
        slot = _Slot(key=key, model=model, tokenizer=tokenizer, base_bytes=self.backend.weight_bytes(model))
        self._slots[key] = slot
        self._evict_to_fit(keep=key, incoming=0)
        if slot.total_bytes > self.budget_bytes:
            log.warning("model %s (%.2f GB) is larger than the memory budget (%.2f GB); keeping it loaded alone",
                        base_path, slot.total_bytes / 1e9, self.budget_bytes / 1e9)
        return slot

    # ------------------------------------------------------------ eviction

    def _evict_to_fit(self, keep: str | None, incoming: int) -> None:
        """Evict least recently used weights until used + incoming fits the budget (never `keep`)."""
        while True:
            used = sum(s.total_bytes for s in self._slots.values())
            if used + incoming <= self.budget_bytes:
                return
            candidates = [s for s in self._slots.values() if s.key != keep]
            if not candidates:
                return
            victim = min(candidates, key=lambda s: s.last_used)
            self._evict_slot(victim)

    def _evict_slot(self, slot: _Slot) -> None:
        log.info("evicting %s (%.1f MB) from the model pool", slot.key, slot.total_bytes / 1e6)
        for model_id in [m for m, e in self._entries.items() if e.slot_key == slot.key]:
            del self._entries[model_id]
        del self._slots[slot.key]
        # A request still generating keeps its own reference; the memory goes when it finishes.
        self.backend.release(slot.model)

    def _drop_locked(self, model_id: str) -> bool:
        entry = self._entries.pop(model_id, None)
        if entry is None:
            return False
        slot = self._slots.get(entry.slot_key)
        if slot is None:
            return True
        if entry.adapter_name is not None:
            slot.adapters.pop(model_id, None)
            with slot.lock:  # never pull an adapter out from under a running generate()
                self.backend.detach_adapter(slot.model, entry.adapter_name)
        if slot.dedicated and not any(e.slot_key == slot.key for e in self._entries.values()):
            self._evict_slot(slot)  # a dedicated copy is useless without its adapter
        return True


class TransformersBackend:
    """Real weights: transformers models on the picked device, adapters through transformers' PEFT integration."""

    def __init__(self, device: str = "auto", dtype: str = "auto"):
        self.device = pick_device(device)
        self.dtype = dtype

    def resolve(self, model_id: str):
        return models.resolve(model_id, progress=False)

    def estimate_bytes(self, base_path: Path) -> int:
        files = list(Path(base_path).glob("*.safetensors")) or list(Path(base_path).glob("*.bin"))
        on_disk = sum(f.stat().st_size for f in files)
        # Checkpoints are usually stored in the dtype they load in; fp32 files loaded as bf16 halve.
        if str(pick_dtype(self.device, self.dtype)).endswith(("bfloat16", "float16")) and _stored_as_fp32(base_path):
            return on_disk // 2
        return on_disk

    def load_base(self, base_path: Path, vocab_size: int | None = None):
        tokenizer = load_tokenizer(base_path)
        return load_causal_lm(base_path, self.device, self.dtype, vocab_size=vocab_size), tokenizer

    def load_adapter_tokenizer(self, adapter_path: Path):
        return load_tokenizer(adapter_path) if has_tokenizer(adapter_path) else None

    def can_share(self, base_tokenizer, adapter_tokenizer) -> bool:
        return adapter_tokenizer is None or len(adapter_tokenizer) == len(base_tokenizer)

    def attach_adapter(self, model, adapter_path: Path, name: str) -> int:
        import warnings

        before = self.weight_bytes(model)
        with warnings.catch_warnings():
            # peft warns that a second adapter joins the first: exactly what sharing a base means.
            warnings.filterwarnings("ignore", message=".*multiple adapters.*")
            model.load_adapter(str(adapter_path), adapter_name=name)
        model.to(self.device)
        model.eval()
        return max(0, self.weight_bytes(model) - before)

    def detach_adapter(self, model, name: str) -> None:
        import warnings

        if name in (getattr(model, "peft_config", None) or {}):
            with warnings.catch_warnings():
                # "active adapter ... deleted": harmless, every request selects its adapter first.
                warnings.filterwarnings("ignore", message=".*was active which is now deleted.*")
                model.delete_adapter(name)

    def activate(self, model, adapter_name: str | None) -> None:
        has_adapters = bool(getattr(model, "_hf_peft_config_loaded", False))
        if adapter_name is not None:
            model.enable_adapters()
            model.set_adapter(adapter_name)
        elif has_adapters:
            model.disable_adapters()

    def weight_bytes(self, model) -> int:
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        buffers = sum(b.numel() * b.element_size() for b in model.buffers())
        return int(params + buffers)

    def stop_ids(self, tokenizer) -> list[int]:
        from trainer.models.chat_format import stop_token_ids

        return stop_token_ids(tokenizer)

    def context_length(self, model) -> int | None:
        cfg = getattr(model, "config", None)
        return getattr(cfg, "max_position_embeddings", None)

    def release(self, model) -> None:
        release_cached_memory(self.device)

    def default_budget_bytes(self) -> int:
        """Half the memory free now (GPU memory on CUDA), so the server leaves room for training jobs."""
        return int(free_memory_bytes(self.device) * 0.5)


def _stored_as_fp32(base_path: Path) -> bool:
    import json

    cfg = Path(base_path) / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    dtype = data.get("torch_dtype") or data.get("dtype") or (data.get("text_config") or {}).get("torch_dtype")
    return dtype in (None, "float32")
