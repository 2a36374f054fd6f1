"""Thumbs up/down and a correction under each chat answer, stored on this machine by `assistant.feedback`.

A declined answer (the docs do not cover the question) is stored at once, so the Knowledge page can
list what the docs miss even when nobody rates it; other answers are stored on their first rating.
The buttons save through `on_click` callbacks, which run before the page reruns, so the page that
follows already shows the new state.
"""

from __future__ import annotations

import uuid

import streamlit as st

from assistant import feedback
from tunepilot.core.errors import is_user_error, one_line
from tunepilot.ui.widgets.i18n import t

ERROR_KEY = "feedback.error"


def feedback_state(question: str, answer: dict) -> dict:
    """What a chat message keeps to rate its answer later (and the stored entry, for a declined one)."""
    state = {"id": uuid.uuid4().hex[:16], "question": question, "grounded": bool(answer.get("grounded")),
             "engine": answer.get("engine", ""), "rating": None, "correction": None}
    if not state["grounded"]:
        _store(state, answer)
    return state


def _answer_of(message: dict) -> dict:
    state = message["feedback"]
    return {"answer": message.get("content", ""), "citations": message.get("citations") or [],
            "grounded": state["grounded"], "engine": state["engine"]}


def _store(state: dict, answer: dict) -> None:
    try:
        feedback.record(state["question"], answer, rating=state["rating"], correction=state["correction"],
                        entry_id=state["id"])
    except Exception as exc:
        if not is_user_error(exc):
            raise
        st.session_state[ERROR_KEY] = one_line(exc)


def _rate(message: dict, rating: str) -> None:
    state = message["feedback"]
    state["rating"] = None if state["rating"] == rating else rating  # a second click takes it back
    _store(state, _answer_of(message))


def _correct(message: dict, key: str) -> None:
    state = message["feedback"]
    state["correction"] = (st.session_state.get(key) or "").strip() or None
    _store(state, _answer_of(message))


def render_feedback(index: int, message: dict) -> None:
    """The rating buttons and the correction box for the answer at `index` of the conversation."""
    state = message.get("feedback")
    if not state:
        return
    cols = st.columns([1, 1, 10])
    cols[0].button("👍", key=f"fb{index}.up", help=t("chat.feedback_up"), on_click=_rate, args=(message, "up"),
                   type="primary" if state["rating"] == "up" else "secondary")
    cols[1].button("👎", key=f"fb{index}.down", help=t("chat.feedback_down"), on_click=_rate, args=(message, "down"),
                   type="primary" if state["rating"] == "down" else "secondary")
    with cols[2].expander(t("chat.correction")):
        key = f"fb{index}.correction"
        st.text_input(t("chat.correction_label"), key=key, value=state["correction"] or "",
                      help=t("chat.correction_help"))
        st.button(t("chat.correction_save"), key=f"fb{index}.save", on_click=_correct, args=(message, key))
    if state["rating"] or state["correction"]:
        st.caption(t("chat.feedback_saved"))
    error = st.session_state.pop(ERROR_KEY, None)
    if error:
        st.error(error, icon="⚠️")
