"""The knowledge base: the shipped bilingual corpus (`docs/`) and the code that indexes and searches it.

    loaders -> chunking -> embeddings -> store (Chroma) + bm25_index -> retrieval (hybrid, RRF)

`knowledge.ingest.ingest(paths)` adds any docs folder; `knowledge.retrieval.search(query)` answers
from the default collection, which indexes the shipped corpus by itself on first use.
"""

from __future__ import annotations

from pathlib import Path

from tunepilot.core.errors import UserError


class KnowledgeError(UserError, ValueError):
    """A problem the user can fix (bad collection name, unknown model folder, unreachable server)."""


def docs_path() -> Path:
    """The shipped corpus: `docs/<lang>/<topic>.md`."""
    return Path(__file__).resolve().parent / "docs"
