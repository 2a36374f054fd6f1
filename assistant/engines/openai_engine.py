"""The `openai` engine: any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, DeepSeek, tunepilot serve).

Settings come from the options first, then the environment (`tunepilot.core.settings.openai_endpoint`,
the same resolution the eval providers and the LLM judge use):

| option | environment | default |
|---|---|---|
| `base_url` | `TUNEPILOT_OPENAI_BASE_URL` (or `OPENAI_BASE_URL`) | OpenAI's own API |
| `model` | `TUNEPILOT_OPENAI_MODEL` (or `OPENAI_MODEL`) | `gpt-4o-mini` |
| `api_key` | `TUNEPILOT_OPENAI_API_KEY` (or `OPENAI_API_KEY`) | a placeholder when a base URL is set (local servers ignore it) |
| `timeout` | `TUNEPILOT_OPENAI_TIMEOUT` | 60 seconds (`DEFAULT_OPENAI_TIMEOUT_S`) |
| `structured_method` | `TUNEPILOT_OPENAI_STRUCTURED_METHOD` | `json_schema` (or `function_calling`, `json_mode`) |

Any transport or API failure (refused connection, timeout, 4xx/5xx, bad key) becomes
`EngineUnavailable` with a one-line reason, so the caller can fall back to the extractive engine.
Retries are off: a slow endpoint should fail fast, not hold the user for minutes.
"""

from __future__ import annotations

from typing import Iterator

from pydantic import BaseModel

from assistant.engines.base import Engine, EngineUnavailable, Passage
from assistant.engines.prompts import answer_messages
from tunepilot.core.settings import openai_endpoint, settings

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIEngine(Engine):
    name = "openai"
    uses_llm = True

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 timeout: float | None = None, temperature: float = 0.0, max_tokens: int = 512,
                 structured_method: str | None = None, **_ignored):
        endpoint = openai_endpoint(base_url=base_url, model=model, api_key=api_key, timeout=timeout)
        self.base_url = endpoint.base_url
        self.model = endpoint.model or DEFAULT_MODEL
        self.api_key = endpoint.api_key
        self.timeout = endpoint.timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.structured_method = structured_method or settings().openai_structured_method
        if not self.base_url and not self.api_key:
            raise EngineUnavailable(
                "the openai engine is not configured: set TUNEPILOT_OPENAI_BASE_URL (and TUNEPILOT_OPENAI_MODEL) "
                "for an OpenAI-compatible server, or TUNEPILOT_OPENAI_API_KEY for OpenAI"
            )
        self._llm = None

    @property
    def where(self) -> str:
        return self.base_url or "api.openai.com"

    def llm(self, streaming: bool = False):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=self.model, base_url=self.base_url, api_key=self.api_key or "not-needed",
            timeout=self.timeout, max_retries=0, temperature=self.temperature,
            max_tokens=self.max_tokens, streaming=streaming,
        )

    def _unavailable(self, exc: Exception) -> EngineUnavailable:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return EngineUnavailable(f"the OpenAI-compatible endpoint {self.where} (model {self.model}) failed: {reason}")

    def stream(self, question: str, passages: list[Passage], lang: str,
               history: list[dict] | None = None) -> Iterator[str]:
        messages = answer_messages(question, passages, lang, history)
        try:
            for chunk in self.llm(streaming=True).stream(messages):
                if chunk.content:
                    yield str(chunk.content)
        except Exception as exc:  # openai/httpx raise many types; all mean "endpoint unusable"
            raise self._unavailable(exc) from exc

    def complete(self, messages: list) -> str:
        try:
            return str(self.llm().invoke(messages).content)
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def structured(self, messages: list, schema: type[BaseModel]) -> BaseModel:
        """Structured output via LangChain; pydantic validation errors propagate so callers can retry."""
        from pydantic import ValidationError

        runnable = self.llm().with_structured_output(schema, method=self.structured_method)
        try:
            result = runnable.invoke(messages)
        except ValidationError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "OutputParserException":
                raise ValueError(str(exc)) from exc
            raise self._unavailable(exc) from exc
        if result is None:
            raise ValueError("the model returned no structured output")
        return result
