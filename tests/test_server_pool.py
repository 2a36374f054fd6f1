"""Model pool: LRU eviction within the memory budget and adapters sharing one base, with fake weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.models.registry import ModelError, ResolvedModel
from trainer.server.model_pool import ModelPool


class FakeTokenizer:
    def __init__(self, vocab: int = 100):
        self.vocab = vocab

    def __len__(self):
        return self.vocab


class FakeModel:
    def __init__(self, path, nbytes):
        self.path = path
        self.nbytes = nbytes
        self.adapters: dict[str, int] = {}
        self.active: str | None = "unset"


class FakeBackend:
    """Weights are just byte counts; records every load, attach and detach."""

    def __init__(self, sizes: dict[str, int], catalog: dict[str, ResolvedModel], adapter_vocab: dict | None = None):
        self.sizes = sizes
        self.catalog = catalog
        self.adapter_vocab = adapter_vocab or {}
        self.loads: list[str] = []
        self.released: list[str] = []
        self.detached: list[str] = []

    def resolve(self, model_id):
        if model_id not in self.catalog:
            raise ModelError(f"Unknown model {model_id!r}.")
        return self.catalog[model_id]

    def estimate_bytes(self, base_path):
        return self.sizes[str(base_path)]

    def load_base(self, base_path, vocab_size=None):
        self.loads.append(str(base_path))
        return FakeModel(str(base_path), self.sizes[str(base_path)]), FakeTokenizer()

    def load_adapter_tokenizer(self, adapter_path):
        vocab = self.adapter_vocab.get(str(adapter_path))
        return FakeTokenizer(vocab) if vocab else None

    def can_share(self, base_tok, adapter_tok):
        return adapter_tok is None or len(adapter_tok) == len(base_tok)

    def attach_adapter(self, model, adapter_path, name):
        model.adapters[name] = 10
        return 10

    def detach_adapter(self, model, name):
        self.detached.append(name)
        model.adapters.pop(name, None)

    def activate(self, model, adapter_name):
        model.active = adapter_name

    def weight_bytes(self, model):
        return model.nbytes

    def stop_ids(self, tokenizer):
        return [1]

    def context_length(self, model):
        return 512

    def release(self, model):
        self.released.append(model.path)


def base(name: str) -> ResolvedModel:
    return ResolvedModel(name=name, base_path=Path(f"/m/{name}"))


def adapter(name: str, on: str) -> ResolvedModel:
    return ResolvedModel(name=name, base_path=Path(f"/m/{on}"), adapter_path=Path(f"/runs/{name}"), kind="finetuned")


@pytest.fixture
def backend():
    catalog = {"a": base("a"), "b": base("b"), "c": base("c"),
               "ft:a:1": adapter("ft1", "a"), "ft:a:2": adapter("ft2", "a"), "ft:a:wide": adapter("wide", "a")}
    return FakeBackend({"/m/a": 400, "/m/b": 400, "/m/c": 400}, catalog, adapter_vocab={"/runs/wide": 120})


def test_least_recently_used_model_is_evicted_when_budget_is_full(backend):
    pool = ModelPool(budget_bytes=900, backend=backend)
    pool.acquire("a")
    pool.acquire("b")
    pool.acquire("a")  # a is now more recent than b
    pool.acquire("c")  # 1200 > 900: b must go, not a
    assert pool.loaded_model_ids() == ["a", "c"]
    assert backend.released == ["/m/b"]
    assert pool.used_bytes == 800
    pool.acquire("b")  # loads again, evicting a (least recently used now)
    assert backend.loads == ["/m/a", "/m/b", "/m/c", "/m/b"]
    assert pool.loaded_model_ids() == ["b", "c"]


def test_reusing_a_loaded_model_does_not_load_again(backend):
    pool = ModelPool(budget_bytes=10_000, backend=backend)
    first = pool.acquire("a")
    second = pool.acquire("a")
    assert backend.loads == ["/m/a"]
    assert first.model is second.model and first.lock is second.lock


def test_adapters_share_the_loaded_base_and_switch_on_activation(backend):
    pool = ModelPool(budget_bytes=10_000, backend=backend)
    plain = pool.acquire("a")
    ft1 = pool.acquire("ft:a:1")
    ft2 = pool.acquire("ft:a:2")
    assert backend.loads == ["/m/a"]  # one copy of the base weights
    assert ft1.model is plain.model is ft2.model
    assert ft1.lock is plain.lock  # one generate at a time on shared weights
    assert ft1.adapter_name != ft2.adapter_name and None not in (ft1.adapter_name, ft2.adapter_name)
    assert pool.used_bytes == 400 + 10 + 10
    with ft2.activated() as model:
        assert model.active == ft2.adapter_name
    with plain.activated() as model:
        assert model.active is None  # base requests run with adapters disabled


def test_adapter_with_a_different_vocabulary_gets_its_own_base_copy(backend):
    pool = ModelPool(budget_bytes=10_000, backend=backend)
    shared = pool.acquire("ft:a:1")
    wide = pool.acquire("ft:a:wide")
    assert wide.model is not shared.model
    assert backend.loads == ["/m/a", "/m/a"]
    pool.drop("ft:a:wide")  # a private copy is freed together with its adapter
    assert len(backend.released) == 1
    assert pool.loaded_model_ids() == ["ft:a:1"]


def test_dropping_an_adapter_detaches_it_and_keeps_the_base(backend):
    pool = ModelPool(budget_bytes=10_000, backend=backend)
    pool.acquire("a")
    handle = pool.acquire("ft:a:1")
    assert pool.drop("ft:a:1") is True
    assert backend.detached == [handle.adapter_name]
    assert pool.loaded_model_ids() == ["a"]
    assert pool.drop("ft:a:1") is False


def test_evicting_a_base_forgets_its_adapters(backend):
    pool = ModelPool(budget_bytes=900, backend=backend)
    pool.acquire("ft:a:1")
    pool.acquire("b")
    pool.acquire("c")  # a (with its adapter) is least recently used
    assert "ft:a:1" not in pool.loaded_model_ids()
    assert pool.acquire("ft:a:1").adapter_name is not None  # comes back on demand
    assert backend.loads.count("/m/a") == 2


def test_a_model_that_no_longer_resolves_is_dropped_and_reported(backend):
    pool = ModelPool(budget_bytes=10_000, backend=backend)
    pool.acquire("ft:a:1")
    del backend.catalog["ft:a:1"]  # e.g. deleted with `tunepilot models delete`
    with pytest.raises(ModelError):
        pool.acquire("ft:a:1")
    assert pool.loaded_model_ids() == []


def test_a_model_larger_than_the_budget_still_loads_alone(backend):
    pool = ModelPool(budget_bytes=100, backend=backend)
    pool.acquire("a")
    pool.acquire("b")
    assert pool.loaded_model_ids() == ["b"]
    assert pool.status()["loaded"][0]["models"] == ["b"]
