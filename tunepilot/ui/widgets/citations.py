"""Numbered citations under an answer; each one expands to the passage it points at."""

from __future__ import annotations

import streamlit as st

from tunepilot.ui.widgets.i18n import t


def render_citations(citations: list[dict]) -> None:
    """One expander per citation, titled `[n] source › heading`, holding the cited passage."""
    if not citations:
        return
    st.caption(t("chat.sources"))
    for cite in citations:
        title = f"[{cite['n']}] {cite['source']}"
        if cite.get("heading"):
            title += f" › {cite['heading']}"
        with st.expander(title):
            st.markdown(cite.get("text", ""))
