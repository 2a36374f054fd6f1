"""Loaded models kept across page reruns (st.cache_resource), shared by every browser session."""

from __future__ import annotations

import streamlit as st

from trainer.models import generation


@st.cache_resource(max_entries=4, show_spinner=False)
def loaded_model(name: str):
    """`trainer.models.generation.load(name)`, kept while the server runs (a 270M model takes seconds to load)."""
    return generation.load(name)


def reply(name: str, prompt: str, max_new_tokens: int) -> str:
    """One greedy reply from the named model (base, local folder, ft: adapter or merged folder)."""
    loaded = loaded_model(name)
    messages = generation.build_messages(prompt, None, None)
    return generation.generate(loaded, [messages], max_new_tokens=max_new_tokens)[0]
