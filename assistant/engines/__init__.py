"""Answer engines behind one interface (see `base.Engine`): extractive (no LLM), openai, local."""

from __future__ import annotations

from assistant.engines.base import ENGINE_NAMES, Engine, EngineUnavailable, Passage


def get_engine(name: str, **options) -> Engine:
    """Build the engine called `name` with its options (model, base_url, api_key, timeout, ...)."""
    from tunepilot.core.errors import UserError

    key = (name or "extractive").strip().lower()
    if key == "extractive":
        from assistant.engines.extractive import ExtractiveEngine

        return ExtractiveEngine(**options)
    if key == "openai":
        from assistant.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(**options)
    if key == "local":
        from assistant.engines.local_engine import LocalEngine

        return LocalEngine(**options)
    raise UserError(f"unknown engine {name!r}: choose one of {', '.join(ENGINE_NAMES)}")


__all__ = ["ENGINE_NAMES", "Engine", "EngineUnavailable", "Passage", "get_engine"]
