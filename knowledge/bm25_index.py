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
from tunepilot.core.language import tokenize

FORMAT = 1


def index_text(text: str, meta: dict) -> str:
    """What BM25 sees for a chunk: its title and heading path and tags, then the passage."""
    prefix = heading_prefix(meta.get("title", ""), meta.get("heading", ""))
    return f"{prefix}\n{meta.get('tags', '')}\n{text}"


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

    def __len__(self) -> int:
        return len(self.ids)

    def top(self, query_tokens: list[str], n: int) -> list[tuple[int, float]]:
        """(position, score) of the best `n` chunks that share at least one token with the query."""
        if self.bm25 is None or not query_tokens:
            return []
        scores = self.bm25.get_scores(query_tokens)
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
        previous.tokens[old[cid]] if cid in old else tokenize(index_text(text, meta))
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
