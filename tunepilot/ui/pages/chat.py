"""Chat page: streamed, cited answers from the docs; a training request gets a config card instead."""

from __future__ import annotations

import streamlit as st

from assistant.answer import stream_answer
from assistant.config_from_text import config_from_text, detect_training_intent
from tunepilot.ui.widgets.citations import render_citations
from tunepilot.ui.widgets.config_card import render_config_card
from tunepilot.ui.widgets.engine_picker import (
    config_engine,
    engine_options,
    pick_engine,
)
from tunepilot.ui.widgets.errors import shown_as_error
from tunepilot.ui.widgets.i18n import t

HISTORY_KEY = "chat.messages"

st.title(t("chat.title"))
st.caption(t("chat.intro"))

engine_choice = pick_engine()
if st.sidebar.button(t("chat.clear"), key="chat.clear"):
    st.session_state[HISTORY_KEY] = []
messages: list[dict] = st.session_state.setdefault(HISTORY_KEY, [])


def render_message(index: int, message: dict) -> None:
    with st.chat_message(message["role"]):
        if message.get("content"):
            st.markdown(message["content"])
        if message.get("citations"):
            render_citations(message["citations"])
        if message.get("config_result"):
            render_config_card(message["config_result"], key=f"card{index}")


def text_pieces(stream, holder: dict):
    """Pass the streamed text through to st.write_stream and keep the final Answer object."""
    for piece in stream:
        if isinstance(piece, str):
            yield piece
        else:
            holder["answer"] = piece


def respond(question: str) -> dict | None:
    """Answer a question (streamed) or build a config card; returns the assistant message to keep."""
    if detect_training_intent(question):
        result = config_from_text(question, engine=config_engine(engine_choice))
        return {"role": "assistant", "content": t("chat.config_intro"), "config_result": result}
    history = [{"role": m["role"], "content": m["content"]} for m in messages[:-1] if m.get("content")]
    holder: dict = {}
    stream = stream_answer(question, engine=engine_choice["name"], history=history, **engine_options(engine_choice))
    with st.chat_message("assistant"):
        body = st.empty()
        with body.container():
            st.write_stream(text_pieces(stream, holder))
        answer = holder["answer"].to_dict()
        # The final Answer is authoritative: the citation guard may have renumbered or dropped markers.
        body.markdown(answer["answer"])
        render_citations(answer["citations"])
        if not answer.get("grounded", True):
            st.caption(t("chat.not_grounded"))
    return {"role": "assistant", "content": answer["answer"], "citations": answer["citations"]}


for index, message in enumerate(messages):
    render_message(index, message)

question = st.chat_input(t("chat.placeholder"))
if question:
    messages.append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(question)
    reply = None
    with shown_as_error():
        with st.spinner(t("chat.thinking")):
            reply = respond(question)
    if reply is not None:
        messages.append(reply)
        if reply.get("config_result"):
            render_message(len(messages) - 1, reply)
