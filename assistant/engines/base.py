"""The engine interface shared by the extractive, OpenAI-compatible and local engines.

An engine turns a standalone question plus numbered passages into answer text with `[n]` markers
(streamed in pieces). LLM engines can also rewrite a follow-up question and fill a pydantic schema
(structured output) for config-from-conversation. Engines never decide grounding or fix citations:
`assistant.answer` does that the same way for every engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from pydantic import BaseModel

ENGINE_NAMES = ("extractive", "openai", "local")


class EngineUnavailable(RuntimeError):
    """The engine cannot answer right now (endpoint down, slow, misconfigured); callers fall back."""


@dataclass
class Passage:
    """One retrieved chunk as an engine sees it; `n` is its citation number in the prompt."""

    n: int
    source: str
    heading: str
    text: str
    lang: str
    score: float = 0.0
    rerank_score: float | None = None  # the cross-encoder's logit when the search re-ranked


class Engine:
    """Base class: subclasses implement `stream`; LLM engines also `complete` and `structured`."""

    name = "base"
    uses_llm = False

    def stream(self, question: str, passages: list[Passage], lang: str,
               history: list[dict] | None = None) -> Iterator[str]:
        raise NotImplementedError

    def complete(self, messages: list) -> str:
        """One non-streamed completion for LangChain messages (used for condensing)."""
        raise EngineUnavailable(f"the {self.name} engine has no language model")

    def structured(self, messages: list, schema: type[BaseModel]) -> BaseModel:
        """Fill `schema` from LangChain messages (used for config-from-conversation)."""
        raise EngineUnavailable(f"the {self.name} engine has no language model")
