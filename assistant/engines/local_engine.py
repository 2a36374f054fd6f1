"""The `local` engine: a transformers chat model on this machine (the default model, a local
folder, a registered name, or a fine-tuned `ft:` id), loaded and run through `trainer.models.generation`.

The prompt is the same LangChain template as the openai engine, rendered to chat messages and then
through the model's own chat template. Small local models often forget citation markers; the
answer layer's guard attaches the supporting passage to such sentences or leaves them uncited.
Structured output is asked for as JSON text and parsed with the pydantic schema.
"""

from __future__ import annotations

import json
import re
from typing import Iterator

from pydantic import BaseModel

from assistant.engines.base import Engine, Passage
from assistant.engines.prompts import answer_messages, to_chat_dicts


class LocalEngine(Engine):
    name = "local"
    uses_llm = True

    def __init__(self, model: str | None = None, max_new_tokens: int = 200, json_max_new_tokens: int = 256, **_ignored):
        from trainer.models.registry import DEFAULT_MODEL

        self.model = model or DEFAULT_MODEL
        self.max_new_tokens = max_new_tokens
        self.json_max_new_tokens = json_max_new_tokens

    def _generate(self, messages: list, max_new_tokens: int | None = None) -> str:
        from trainer.models import generation

        loaded = generation.load(self.model)  # ModelError (a user mistake) propagates as-is
        chats = to_chat_dicts(messages)
        return generation.generate(loaded, [chats], max_new_tokens=max_new_tokens or self.max_new_tokens)[0]

    def stream(self, question: str, passages: list[Passage], lang: str,
               history: list[dict] | None = None) -> Iterator[str]:
        # trainer.models.generation returns whole replies; one piece keeps the streaming interface honest.
        yield self._generate(answer_messages(question, passages, lang, history))

    def complete(self, messages: list) -> str:
        return self._generate(messages, max_new_tokens=64)

    def structured(self, messages: list, schema: type[BaseModel]) -> BaseModel:
        from langchain_core.messages import HumanMessage

        fields = ", ".join(schema.model_fields)
        ask = HumanMessage(f"Reply with one JSON object with these keys (null when not stated): {fields}.")
        text = self._generate(list(messages) + [ask], max_new_tokens=self.json_max_new_tokens)
        match = re.search(r"\{.*\}", text, flags=re.S)
        if match is None:
            raise ValueError("the local model did not reply with a JSON object")
        return schema.model_validate(json.loads(match.group(0)))
