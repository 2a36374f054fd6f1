"""Numbers about one knowledge collection for the Knowledge page: chunks, documents, languages.

Read straight from the collection the retriever searches (same store, same embedder space), and
cached per collection revision, which every ingest changes, so the numbers are never stale.
"""

from __future__ import annotations

from collections import Counter

import streamlit as st


def _open_collection(collection: str):
    from knowledge import store
    from knowledge.embeddings import get_embedder

    backend = store.Store(store.chroma_url())
    return backend, backend.open(collection, get_embedder().name, create=False)


@st.cache_data(show_spinner=False, max_entries=32)
def _stats_for(location: str, collection: str, revision: str) -> dict:
    from knowledge import store

    _, col = _open_collection(collection)
    _, _, metadatas = store.all_chunks(col)
    sources = Counter(m.get("source", "") for m in metadatas)
    languages = Counter(m.get("lang") or "?" for m in metadatas)
    return {
        "location": location,
        "chunks": len(metadatas),
        "documents": len(sources),
        "languages": dict(languages.most_common()),
        "largest": [{"source": s, "chunks": n} for s, n in sources.most_common(10)],
    }


def collection_stats(collection: str) -> dict | None:
    """Stats of `collection`, or None while it does not exist (nothing ingested yet)."""
    from knowledge import store

    backend, col = _open_collection(collection)
    if col is None:
        return None
    return _stats_for(backend.location, collection, store.revision(col))
