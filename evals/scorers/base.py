"""The scorer interface: what a scorer sees for one row, and what it promises about its numbers.

A scorer returns a float for a row, or None when it does not apply (for instance perplexity on an
API model); the runner never turns "not applicable" into 0. Corpus-level scorers (classification)
also summarise all rows of a model at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evals.errors import EvalError


@dataclass
class RowContext:
    """Everything a scorer may look at for one (row, model) pair."""

    output: str
    expected: str | None
    prompt: str
    messages: list[dict]
    row: dict = field(default_factory=dict)
    latency_s: float | None = None
    provider: Any = None  # evals.providers.Provider, for model-based scorers


class Scorer:
    """Subclasses set the class attributes and implement `score`."""

    name: str = ""
    description: str = ""
    needs_expected: bool = True
    higher_is_better: bool = True
    bounded: bool = True  # values lie in [0, 1], so they can be weighted into an overall score
    corpus_level: bool = False
    allowed_params: tuple[str, ...] = ()

    def __init__(self, params: dict | None = None, settings: Any = None):
        self.params = dict(params or {})
        self.settings = settings
        unknown = sorted(set(self.params) - set(self.allowed_params))
        if unknown:
            allowed = ", ".join(self.allowed_params) or "none"
            raise EvalError(f"Scorer {self.name} has no option {', '.join(unknown)}; its options: {allowed}.")

    def unavailable_reason(self) -> str | None:
        """Why this scorer is skipped for the whole run (shown as a notice), or None."""
        return None

    def score(self, ctx: RowContext) -> float | None:
        raise NotImplementedError

    def corpus(self, contexts: list[RowContext]) -> dict | None:
        """Corpus-level details over one model's scored rows (only corpus-level scorers)."""
        return None
