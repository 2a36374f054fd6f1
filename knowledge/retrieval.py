"""Hybrid search: dense (Chroma + the embedding model) and BM25 (bm25s + jieba), fused by
reciprocal rank, optionally re-ranked by a local cross-encoder.

MiniLM is an English model, so for a Chinese question its ranking is mostly noise; the fusion then
leans on BM25 (weights below; 0.1 for zh measured best on the dev sets). Queries are expanded
through the bilingual glossary of `tunepilot.core.language` (BM25 at EXPANSION_WEIGHT; the
dense query of a Chinese question carries the English spellings), and BM25 weights the heading
path (`bm25_index.HEADING_WEIGHT`). Everything expensive is loaded once per process and shared: the
embedder, the jieba dictionary, the Chroma client, and per collection a BM25 snapshot that is
refreshed only when the collection's revision changes (checked at most once a second).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass

from knowledge import KnowledgeError, bm25_index
from knowledge import store as stores
from knowledge.chunking import passage
from knowledge.embeddings import get_embedder
from tunepilot.core.language import (
    detect_lang,
    expansions,
    has_cjk,
    term_spellings,
    tokenize,
)
from tunepilot.core.settings import settings

MODES = ("hybrid", "dense", "bm25")
RRF_K = 60
CANDIDATES = 40  # per retriever, before fusion
RERANK_CANDIDATES = 20
# (dense, bm25) weight in the fusion, by question language.
WEIGHTS = {"en": (1.0, 1.0), "zh": (0.1, 1.0)}
# Query expansion (tunepilot.core.language glossary): the other spellings of the question's
# concepts count in BM25 at this fraction of the question's own words, so a translation helps find
# the passage without outweighing what was actually asked.
EXPANSION_WEIGHT = 0.3
REFRESH_SECONDS = 1.0
log = logging.getLogger(__name__)


@dataclass
class Hit:
    rank: int
    score: float
    source: str  # path relative to the ingested root
    heading: str  # heading path ("LoRA > Rank and alpha"), or the title before the first heading
    text: str
    lang: str
    chunk_id: str = ""
    title: str = ""
    page: int | None = None
    rerank_score: float | None = None  # the cross-encoder's logit, when the search re-ranked

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "source": self.source,
            "heading": self.heading,
            "text": self.text,
            "lang": self.lang,
        }


class _CollectionState:
    def __init__(self, st: stores.Store, collection: str, embedder_name: str):
        self.store = st
        self.collection = collection
        self.embedder_name = embedder_name
        self.physical = st.physical_name(collection, embedder_name)
        self.snapshot: bm25_index.Snapshot | None = None
        self.checked_at = 0.0
        self.col = None
        self.lock = threading.Lock()


_states: dict[tuple, _CollectionState] = {}
_registry_lock = threading.Lock()


def _state(collection: str, chroma_url: str | None) -> _CollectionState:
    st = stores.get_store(chroma_url)
    embedder = get_embedder()
    key = (id(st), collection, embedder.name)  # stores live as long as the process
    with _registry_lock:
        if key not in _states:
            _states[key] = _CollectionState(st, collection, embedder.name)
        return _states[key]


def _refresh(state: _CollectionState) -> None:
    """Make the BM25 snapshot match the collection (and, for "default", the shipped corpus)."""
    now = time.monotonic()
    if state.snapshot is not None and now - state.checked_at < REFRESH_SECONDS:
        return
    with state.lock:
        if state.snapshot is not None and time.monotonic() - state.checked_at < REFRESH_SECONDS:
            return
        if state.collection == "default":
            from knowledge.ingest import sync_shipped

            sync_shipped(state.store, state.collection, progress=sys.stderr.isatty())
        col = state.store.open(state.collection, state.embedder_name, create=False)
        if col is None:
            raise KnowledgeError(
                f"no collection {state.collection!r} in {state.store.location}; index documents first: "
                f"tunepilot ingest PATH --collection {state.collection}"
            )
        state.col = col
        revision = stores.revision(col)
        if state.snapshot is None or state.snapshot.revision != revision:
            state.snapshot = _load_or_rebuild(state, col, revision)
        state.checked_at = time.monotonic()


def _load_or_rebuild(state: _CollectionState, col, revision: str) -> bm25_index.Snapshot:
    path = state.store.snapshot_path(state.physical)
    saved = bm25_index.load(path)
    if saved is not None and saved.revision == revision:
        return saved
    previous = saved or state.snapshot  # its tokens are reused for unchanged chunks
    # Stale: an ingest is running, was interrupted, or ran on another machine. Rebuild from Chroma.
    with state.store.writer_lock(state.physical, wait=False) as locked:
        if locked:
            # No ingest runs here, so a dirty revision is a crashed one's: heal it, and store the
            # snapshot so later readers just load it.
            col = state.col = state.store.open(state.collection, state.embedder_name, create=False)
            revision = stores.revision(col)
            if not revision or revision.startswith(("dirty", "new")):
                revision = state.store.set_revision(col)
            snap = bm25_index.build(*stores.all_chunks(col), revision, previous=previous)
            bm25_index.save(snap, path)
            return snap
    # An ingest holds the lock: search what is committed so far, in memory only.
    return bm25_index.build(*stores.all_chunks(col), revision, previous=previous)


def _dense(state: _CollectionState, query: str, n: int) -> list[tuple[str, float]]:
    snap = state.snapshot
    count = len(snap) if snap is not None else 0
    if count == 0:
        count = state.col.count()
    if count == 0:
        return []
    vector = get_embedder().embed([dense_query(query)])[0]
    res = state.col.query(query_embeddings=[vector.tolist()], n_results=min(n, count), include=["distances"])
    return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0])]


def dense_query(query: str) -> str:
    """What the (English) embedding model reads for a question: a Chinese question gets the
    English spellings of the concepts it names appended, so the vector carries its meaning."""
    if not has_cjk(query):
        return query
    english = [t for t in expansions(query) if not has_cjk(t)]
    return f"{query} ({', '.join(english)})" if english else query


def _bm25(state: _CollectionState, query: str, n: int) -> list[tuple[str, float]]:
    snap = state.snapshot
    if snap is None:
        return []
    own = tokenize(query)
    extra = [t for t in tokenize(" ".join(expansions(query))) if t not in own]
    return [(snap.ids[pos], score) for pos, score in snap.top(own, n, extra=extra, extra_weight=EXPANSION_WEIGHT)]


def _fuse(ranked: list[tuple[list[tuple[str, float]], float]]) -> list[tuple[str, float]]:
    scores: dict[str, float] = {}
    for results, weight in ranked:
        for rank, (cid, _) in enumerate(results, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (RRF_K + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def _chunk(state: _CollectionState, ids: list[str]) -> dict[str, tuple[str, dict]]:
    """Text and metadata per chunk id: from the snapshot, else (newer than it) from Chroma."""
    snap = state.snapshot
    found: dict[str, tuple[str, dict]] = {}
    missing = []
    for cid in ids:
        pos = snap.position.get(cid) if snap is not None else None
        if pos is None:
            missing.append(cid)
        else:
            found[cid] = (snap.texts[pos], snap.metas[pos])
    if missing:
        got = state.col.get(ids=missing, include=["documents", "metadatas"])
        for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
            found[cid] = (doc, meta)
    return found


def search(
    query: str,
    k: int = 5,
    collection: str = "default",
    *,
    mode: str = "hybrid",
    rerank: bool | None = None,
    chroma_url: str | None = None,
) -> list[Hit]:
    """The `k` best passages for `query`. `mode`: hybrid (default), dense or bm25 (for comparison).
    `rerank`: None = when TUNEPILOT_RERANKER names a cross-encoder folder."""
    query = (query or "").strip()
    if not query:
        raise KnowledgeError("empty query: ask something, e.g. tunepilot search \"LoRA rank\"")
    if mode not in MODES:
        raise KnowledgeError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
    k = max(1, int(k))
    state = _state(stores.check_collection_name(collection), chroma_url)
    _refresh(state)

    use_rerank = rerank if rerank is not None else bool(settings().reranker)
    depth = max(CANDIDATES, k, RERANK_CANDIDATES if use_rerank else 0)
    w_dense, w_bm25 = WEIGHTS[detect_lang(query)]
    if mode == "dense":
        ranked = _dense(state, query, depth)
    elif mode == "bm25":
        ranked = _bm25(state, query, depth)
    else:
        try:
            dense = _dense(state, query, depth)
        except Exception as exc:  # e.g. the vector index is being rewritten by another process
            log.warning("dense retrieval failed (%s: %s); answering from BM25 only", type(exc).__name__, exc)
            dense = []
        ranked = _fuse([(dense, w_dense), (_bm25(state, query, depth), w_bm25)])

    if use_rerank and ranked:
        from knowledge.rerank import rerank as cross_rerank

        pool = ranked[:RERANK_CANDIDATES]
        chunks = _chunk(state, [cid for cid, _ in pool])
        pool = [(cid, s) for cid, s in pool if cid in chunks]
        passages = [passage(chunks[c][1].get("title", ""), chunks[c][1].get("heading", ""), chunks[c][0]) for c, _ in pool]
        ranked = cross_rerank(query, [cid for cid, _ in pool], passages)

    reranked = bool(use_rerank and ranked)
    top = ranked[:k]
    chunks = _chunk(state, [cid for cid, _ in top])
    hits: list[Hit] = []
    for cid, score in top:
        if cid not in chunks:  # deleted since the snapshot was built
            continue
        text, meta = chunks[cid]
        hits.append(
            Hit(
                rank=len(hits) + 1,
                score=score,
                source=meta.get("source", ""),
                heading=meta.get("heading") or meta.get("title", ""),
                text=text,
                lang=meta.get("lang", ""),
                chunk_id=cid,
                title=meta.get("title", ""),
                page=meta.get("page") or None,
                rerank_score=score if reranked else None,
            )
        )
    return hits


def term_rarity(terms: list[str], collection: str = "default", *, chroma_url: str | None = None) -> dict[str, float]:
    """For each term, the share of the collection's chunks that contain it in any of its glossary
    spellings (0.0 = nowhere): the grounding gate's measure of how telling a shared word is."""
    state = _state(stores.check_collection_name(collection), chroma_url)
    _refresh(state)
    snap = state.snapshot
    if snap is None or not len(snap):
        return {t: 0.0 for t in terms}
    out = {}
    for term in terms:
        best = 0
        for spelling in term_spellings(term):
            toks = tokenize(spelling) or [spelling]  # content terms are stems: "garbl"
            if toks:  # a phrase occurs at most as often as its rarest word
                best = max(best, min(snap.document_frequency(t) for t in toks))
        out[term] = best / len(snap)
    return out


def warm_up(collection: str = "default", chroma_url: str | None = None) -> None:
    """Load the models and the index now (so the first real search is fast)."""
    search("warm up", k=1, collection=collection, chroma_url=chroma_url)
