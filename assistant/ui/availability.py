"""Say clearly when a page's library part is not installed, instead of failing with an ImportError."""

from __future__ import annotations

import importlib.util

import streamlit as st

from assistant.ui.i18n import t


def require(*modules: str) -> None:
    """Stop the page with a one-line notice when one of `modules` cannot be imported."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        st.info(t("app.not_available", parts=", ".join(missing)), icon="🚧")
        st.stop()
