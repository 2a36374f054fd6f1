"""Streamlit entry point (`tunepilot ui`): the frame around every page and the page router.

This file runs before each page on every rerun: it sets the page config, the language switch and
the workspace caption in the sidebar, then hands over to the selected page in `tunepilot/ui/pages/`.
Pages stay thin: read widgets, call the library, render.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from tunepilot.core import workspace
from tunepilot.ui.widgets.i18n import current_lang, language_switch, t

PAGES_DIR = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="tunepilot", page_icon="🎛️", layout="wide")
current_lang()

navigation = st.navigation(
    [
        st.Page(PAGES_DIR / "chat.py", title=t("nav.chat"), icon="💬", url_path="chat", default=True),
        st.Page(PAGES_DIR / "jobs.py", title=t("nav.jobs"), icon="🏋️", url_path="jobs"),
        st.Page(PAGES_DIR / "models.py", title=t("nav.models"), icon="🧠", url_path="models"),
        st.Page(PAGES_DIR / "evals.py", title=t("nav.evals"), icon="📊", url_path="evals"),
        st.Page(PAGES_DIR / "knowledge.py", title=t("nav.knowledge"), icon="📚", url_path="knowledge"),
    ]
)

with st.sidebar:
    language_switch()
    st.caption(t("app.workspace", path=str(workspace.home())))

navigation.run()
