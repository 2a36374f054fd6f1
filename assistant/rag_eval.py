"""`tunepilot eval rag`: score the product's own retrieval and answers on a question file.

`evals.rag` holds the question format and the metrics and knows no retriever (evals sits beside
knowledge in the layer map); this module hands it the real ones: hybrid search over the index and
the assistant's grounded answer, and stores the result for the Knowledge page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assistant.answer import answer
from evals import rag
from knowledge.retrieval import search


def evaluate_file(questions: str | Path, k: int = 5, collection: str = "default", engine: str = "extractive",
                  progress: bool = False, on_progress: Callable[[int, int], None] | None = None,
                  save: bool = True, **engine_options) -> dict:
    """Run every question of `questions` through search (top `k`) and the assistant; the result
    document of `evals.rag.evaluate`, saved under the workspace unless `save` is off."""
    qs = rag.load_questions(questions)
    result = rag.evaluate(
        qs,
        search=lambda q, n: search(q, k=n, collection=collection),
        answer=lambda q: answer(q, engine=engine, collection=collection, **engine_options).to_dict(),
        k=k, progress=progress, on_progress=on_progress, collection=collection, engine=engine,
    )
    if save:
        result["saved_as"] = str(rag.save_result(result))
    return result
