"""Interface language for the Streamlit app: English and Chinese, following the browser, with a switch.

Strings live in `tunepilot/ui/locales/{en,zh}.json` as flat dotted keys ("chat.title"). The chosen
language sits in `st.session_state["lang"]`; on a session's first run it is taken from the
browser (`st.context.locale`, which is `navigator.language`), falling back to the request's
Accept-Language header, then English.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import streamlit as st

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES = {"en": "English", "zh": "中文"}
DEFAULT_LANG = "en"
STATE_KEY = "lang"
SWITCH_KEY = "lang_switch"


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    """All strings of one language (read once per process)."""
    return json.loads((LOCALES_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def lang_from_tag(tag: str | None) -> str | None:
    """Map a browser language tag ("zh-CN", "en-US,en;q=0.9") to a supported language, or None."""
    if not tag:
        return None
    for part in tag.split(","):
        code = part.split(";")[0].strip().lower()
        base = code.split("-")[0].split("_")[0]
        if base in LANGUAGES:
            return base
    return None


def detect_browser_lang() -> str:
    """The language the browser asks for: navigator.language first, then Accept-Language."""
    try:
        locale = st.context.locale
    except Exception:  # no browser context (bare script run)
        locale = None
    found = lang_from_tag(locale)
    if found:
        return found
    try:
        header = st.context.headers.get("Accept-Language")
    except Exception:
        header = None
    return lang_from_tag(header) or DEFAULT_LANG


def current_lang() -> str:
    """The session's language, detected from the browser on first use."""
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = detect_browser_lang()
    return st.session_state[STATE_KEY]


def t(key: str, **values) -> str:
    """The string for `key` in the session's language, with `{name}` placeholders filled in.

    A key missing from the chosen language falls back to English, then to the key itself, so a
    forgotten translation shows up as readable text instead of an exception.
    """
    lang = current_lang()
    text = catalog(lang).get(key) or catalog(DEFAULT_LANG).get(key) or key
    return text.format(**values) if values else text


def _apply_switch() -> None:
    st.session_state[STATE_KEY] = st.session_state[SWITCH_KEY]


def language_switch() -> None:
    """The sidebar control that changes the interface language for this session.

    The choice is copied into a plain session key: Streamlit drops a widget's own state when the
    person moves to another page, and the language must survive that.
    """
    options = list(LANGUAGES)
    st.sidebar.radio(
        t("app.language"),
        options=options,
        index=options.index(current_lang()),
        format_func=LANGUAGES.get,
        key=SWITCH_KEY,
        on_change=_apply_switch,
        horizontal=True,
    )


def column_labels(columns) -> dict:
    """`column_config` for st.dataframe: known columns get headers in the interface language.

    The data keeps its own column names (what the library returns); only the headers change.
    """
    known = catalog(DEFAULT_LANG)
    return {str(c): st.column_config.Column(t(f"col.{c}")) for c in columns if f"col.{c}" in known}
