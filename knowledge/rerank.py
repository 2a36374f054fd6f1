"""Optional cross-encoder re-ranking of the fused candidates.

Only when `TUNEPILOT_RERANKER` names a local sentence-transformers CrossEncoder folder (nothing is
downloaded). The model is loaded once per process.
"""

from __future__ import annotations

import threading
from pathlib import Path

from knowledge import KnowledgeError
from tunepilot.core.settings import settings

_models: dict[str, object] = {}
_lock = threading.Lock()


def _model(path: str):
    with _lock:
        if path not in _models:
            folder = Path(path).expanduser()
            if not (folder / "config.json").exists():
                raise KnowledgeError(
                    f"TUNEPILOT_RERANKER={path} is not a cross-encoder model folder (no config.json); "
                    "point it at a local folder or unset it"
                )
            from sentence_transformers import CrossEncoder

            _models[path] = CrossEncoder(str(folder), device="cpu", local_files_only=True)
        return _models[path]


def rerank(query: str, ids: list[str], passages: list[str]) -> list[tuple[str, float]]:
    """(id, score) best first, scored by the configured cross-encoder."""
    path = settings().reranker
    if not path:
        raise KnowledgeError("rerank requested but TUNEPILOT_RERANKER is not set to a cross-encoder folder")
    if not ids:
        return []
    scores = _model(path).predict([(query, p) for p in passages], show_progress_bar=False)
    order = sorted(range(len(ids)), key=lambda i: -float(scores[i]))
    return [(ids[i], float(scores[i])) for i in order]
