"""The BM25 side of hybrid search: a snapshot of a collection's chunks, tokenised and indexed.

The snapshot is derived from Chroma (the source of truth) and tagged with the collection revision
it was built from. It is written as one file atomically (`tunepilot.core.atomic`), so a reader never
sees half of one and a crash leaves the previous snapshot in place. It also holds every chunk's
text and metadata, which lets search return dense hits without a second round trip to Chroma.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knowledge.chunking import heading_prefix
from tunepilot.core import atomic
from tunepilot.core.language import TOKENIZER_VERSION, stem, tokenize

# The heading path names what a passage is about, so its words count this many times (a poor
# man's BM25F: bm25s indexes one field, and repeating a field's tokens raises its term frequency).
HEADING_WEIGHT = 2
# A snapshot built with another tokenizer or field weighting is not loaded: searches rebuild it
# from Chroma (the source of truth) and save the new one, so old indexes heal by themselves.
FORMAT = f"2-tok{TOKENIZER_VERSION}-h{HEADING_WEIGHT}"


def index_text(text: str, meta: dict) -> str:
    """What BM25 sees for a chunk: its title and heading path and tags, then the passage."""
    prefix = heading_prefix(meta.get("title", ""), meta.get("heading", ""))
    return f"{prefix}\n{meta.get('tags', '')}\n{text}"


def index_tokens(text: str, meta: dict) -> list[str]:
    """BM25 tokens of a chunk: `index_text`, with the heading path weighted HEADING_WEIGHT times."""
    prefix = heading_prefix(meta.get("title", ""), meta.get("heading", ""))
    return tokenize(index_text(text, meta)) + tokenize(prefix) * (HEADING_WEIGHT - 1)


@dataclass
class Snapshot:
    revision: str
    ids: list[str]
    texts: list[str]
    metas: list[dict]
    tokens: list[list[str]]
    bm25: object | None = None
    position: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.position = {cid: i for i, cid in enumerate(self.ids)}
        self._df: dict[str, int] | None = None

    def document_frequency(self, token: str) -> int:
        """In how many chunks `token` occurs (counted once, on first use, from the tokens)."""
        if self._df is None:
            df: dict[str, int] = {}
            for toks in self.tokens:
                # Raw tokens and their stems: content terms (what the grounding gate asks
                # about) are stemmed tokens.
                for tok in set(toks) | {stem(t) for t in toks if t[:1].isascii()}:
                    df[tok] = df.get(tok, 0) + 1
            self._df = df
        return self._df.get(token, 0)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query_tokens: list[str]) -> np.ndarray | None:
        """BM25 score of every chunk for the tokens (None when nothing is indexed or asked)."""
        if self.bm25 is None or not query_tokens:
            return None
        return self.bm25.get_scores(query_tokens)

    def top(self, query_tokens: list[str], n: int, extra: list[str] | None = None,
            extra_weight: float = 0.0) -> list[tuple[int, float]]:
        """(position, score) of the best `n` chunks that share at least one token with the query;
        `extra` tokens (query expansion) add their scores times `extra_weight`."""
        scores = self.scores(query_tokens)
        more = self.scores(extra) if extra and extra_weight else None
        if more is not None:
            scores = more * extra_weight if scores is None else scores + more * extra_weight
        if scores is None:
            return []
        n = min(n, len(scores))
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(i), float(scores[i])) for i in best if scores[i] > 0]


def build(ids: list[str], texts: list[str], metas: list[dict], revision: str, previous: Snapshot | None = None) -> Snapshot:
    """Index the chunks; tokens of chunks the previous snapshot already had are reused (chunk ids
    change with content, so an equal id means equal text)."""
    import bm25s

    if len(set(ids)) != len(ids):  # paging through a collection that is being written to
        keep = {cid: i for i, cid in enumerate(ids)}
        rows = sorted(keep.values())
        ids, texts, metas = [ids[i] for i in rows], [texts[i] for i in rows], [metas[i] for i in rows]
    old = previous.position if previous is not None else {}
    tokens = [
        previous.tokens[old[cid]] if cid in old else index_tokens(text, meta)
        for cid, text, meta in zip(ids, texts, metas)
    ]
    snap = Snapshot(revision, ids, texts, metas, tokens)
    if ids:
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        snap.bm25 = retriever
    return snap


def save(snap: Snapshot, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.open_atomic(path, "wb") as fh:
        pickle.dump(
            {"format": FORMAT, "revision": snap.revision, "ids": snap.ids, "texts": snap.texts,
             "metas": snap.metas, "tokens": snap.tokens, "bm25": snap.bm25},
            fh,
            protocol=pickle.HIGHEST_PROTOCOL,
        )


def load(path: Path) -> Snapshot | None:
    """The saved snapshot, or None when missing, unreadable or from another format."""
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except Exception:  # missing, torn by a crash before os.replace existed, or from other versions
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return Snapshot(data["revision"], data["ids"], data["texts"], data["metas"], data["tokens"], data["bm25"])
