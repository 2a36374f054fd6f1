"""The answer-engine picker in the chat sidebar: extractive (offline), OpenAI-compatible, or a local model."""

from __future__ import annotations

import streamlit as st

from tunepilot.ui.widgets.i18n import t

ENGINES = ["extractive", "openai", "local"]


def pick_engine() -> dict:
    """Sidebar widgets; returns {"name", "base_url", "model", "api_key", "local_model"} for this session."""
    with st.sidebar:
        st.markdown(f"**{t('engine.title')}**")
        # Labels resolved now: a format_func must not depend on session state when it is called later.
        labels = {engine: t(f"engine.{engine}") for engine in ENGINES}
        name = st.selectbox(t("engine.label"), ENGINES, format_func=labels.get, key="engine.name")
        choice = {"name": name}
        if name == "openai":
            choice["base_url"] = st.text_input(t("engine.base_url"), key="engine.base_url", placeholder="https://api.openai.com/v1")
            choice["model"] = st.text_input(t("engine.model"), key="engine.model", placeholder="gpt-4o-mini")
            choice["api_key"] = st.text_input(t("engine.api_key"), key="engine.api_key", type="password")
        elif name == "local":
            choice["local_model"] = st.text_input(t("engine.local_model"), value="gemma-3-270m", key="engine.local_model",
                                                  help=t("engine.local_model_help"))
    return choice


def engine_options(choice: dict) -> dict:
    """Keyword options for `stream_answer(..., engine=choice["name"], **options)`; blank fields fall back to env vars."""
    if choice["name"] == "openai":
        return {key: choice[key].strip() for key in ("base_url", "model", "api_key") if choice.get(key, "").strip()}
    if choice["name"] == "local" and choice.get("local_model", "").strip():
        return {"model": choice["local_model"].strip()}
    return {}


def config_engine(choice: dict):
    """What `config_from_text(engine=...)` takes: None for the deterministic parser, else an LLM engine.

    An engine that cannot be built from the fields (say, no URL given) is passed by name, so
    config_from_text records why it fell back to the parser and the card shows that note.
    """
    from assistant.engines import EngineUnavailable, get_engine

    if choice["name"] == "extractive":
        return None
    try:
        return get_engine(choice["name"], **engine_options(choice))
    except EngineUnavailable:
        return choice["name"]
