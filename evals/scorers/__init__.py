"""Scorers by name (`SCORERS`), and `build_scorers` to turn the eval spec's scorer list into instances.

| name | what | range |
|---|---|---|
| exact, contains, icontains, regex | string match | 0/1 |
| json_valid, json_schema | structured output | 0/1 |
| rouge_l, bleu, chrf | overlap with the expected answer | 0-1 |
| embedding | cosine similarity, offline MiniLM | -1-1 |
| classification | label accuracy; per-model precision/recall/F1, macro-F1 | 0/1 |
| llm_judge | rubric grade from an OpenAI-compatible judge | 0-1 |
| latency | seconds per row (lower is better) | >= 0 |
| perplexity | of the expected answer, local models (lower is better) | >= 1 |
| asserts | promptfoo assertions of each test (evals.promptfoo); 1 = the test passes | 0/1 |
| tool_call | the reply makes the row's expected_tool_call (evals.tools) | 0/1 |
"""

from __future__ import annotations

from evals.errors import EvalError
from evals.scorers.assertions import Assertions
from evals.scorers.base import RowContext, Scorer
from evals.scorers.classification import Classification
from evals.scorers.judge import LlmJudge
from evals.scorers.match import Contains, ExactMatch, IContains, RegexMatch
from evals.scorers.overlap import Bleu, Chrf, RougeL
from evals.scorers.runtime import Latency, Perplexity
from evals.scorers.semantic import EmbeddingSimilarity
from evals.scorers.structured import JsonSchema, JsonValid
from evals.scorers.tool_call import ToolCall

SCORERS: dict[str, type[Scorer]] = {
    cls.name: cls
    for cls in (ExactMatch, Contains, IContains, RegexMatch, JsonValid, JsonSchema, RougeL, Bleu, Chrf,
                EmbeddingSimilarity, Classification, LlmJudge, Latency, Perplexity, Assertions, ToolCall)
}
# Other spellings people type.
ALIASES = {"rouge": "rouge_l", "rougeL": "rouge_l", "rouge-l": "rouge_l", "chrF": "chrf", "json": "json_valid",
           "embedding_similarity": "embedding", "similarity": "embedding", "judge": "llm_judge", "accuracy": "classification",
           "exact_match": "exact", "ppl": "perplexity"}


def scorer_class(name: str) -> type[Scorer]:
    key = ALIASES.get(name, name)
    if key not in SCORERS:
        raise EvalError(f"Unknown scorer {name!r}; choose from {', '.join(SCORERS)}.")
    return SCORERS[key]


def build_scorers(scorer_specs, settings=None) -> list[Scorer]:
    """ScorerSpec list -> scorer instances (options validated now, before any generation)."""
    out = []
    for spec in scorer_specs:
        out.append(scorer_class(spec.name)(spec.params, settings))
    return out


__all__ = ["SCORERS", "Scorer", "RowContext", "build_scorers", "scorer_class"]
