"""Chat page: streamed, cited answers from the docs; a training request gets a config card instead.

The card shows the conversation's draft config (`assistant.draft`): later messages that edit it
("5 epochs", "use QLoRA") update that card in place and reply with what changed; questions in
between are answered and leave the draft alone; "start over" clears it."""

from __future__ import annotations

import streamlit as st

from assistant.answer import stream_answer
from assistant.config_from_text import RESET_REPLY, converse
from assistant.draft import Draft
from tunepilot.ui.widgets.citations import render_citations
from tunepilot.ui.widgets.config_card import render_config_card
from tunepilot.ui.widgets.engine_picker import (
    config_engine,
    engine_options,
    pick_engine,
)
from tunepilot.ui.widgets.errors import shown_as_error
from tunepilot.ui.widgets.feedback import feedback_state, render_feedback
from tunepilot.ui.widgets.i18n import current_lang, t

HISTORY_KEY = "chat.messages"
DRAFT_KEY, CARD_KEY = "chat.draft", "chat.card_index"  # the draft config and the message holding its card

st.title(t("chat.title"))
st.caption(t("chat.intro"))

engine_choice = pick_engine()
if st.sidebar.button(t("chat.clear"), key="chat.clear"):
    st.session_state[HISTORY_KEY] = []
    st.session_state[DRAFT_KEY] = Draft()
    st.session_state.pop(CARD_KEY, None)
draft: Draft = st.session_state.setdefault(DRAFT_KEY, Draft())
messages: list[dict] = st.session_state.setdefault(HISTORY_KEY, [])


def render_message(index: int, message: dict) -> None:
    with st.chat_message(message["role"]):
        if message.get("content"):
            st.markdown(message["content"])
        if message.get("citations"):
            render_citations(message["citations"])
        if message.get("feedback"):
            render_feedback(index, message)
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
    kind, result = converse(draft, question, engine=config_engine(engine_choice))
    if kind == "reset":
        st.session_state.pop(CARD_KEY, None)
        return {"role": "assistant", "content": RESET_REPLY.get(current_lang(), RESET_REPLY["en"]), "redraw": True}
    if kind == "edit":
        card = st.session_state.get(CARD_KEY)
        if card is not None and card < len(messages) and messages[card].get("config_result"):
            # The draft's card updates in place; its widgets forget their old values.
            messages[card]["config_result"] = result
            for key in [k for k in st.session_state if str(k).startswith(f"card{card}.") and not str(k).endswith(".job_id")]:
                del st.session_state[key]
            return {"role": "assistant", "content": result["reply"], "redraw": True}
        st.session_state[CARD_KEY] = len(messages)
        return {"role": "assistant", "content": t("chat.config_intro") + "\n\n" + result["reply"], "config_result": result}
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
        reply = {"role": "assistant", "content": answer["answer"], "citations": answer["citations"],
                 "feedback": feedback_state(question, answer)}
        render_feedback(len(messages), reply)  # the index this reply takes in the history
    return reply


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
        redraw = reply.pop("redraw", False)
        messages.append(reply)
        if redraw:
            st.rerun()  # redraw the history: the card above shows the edited draft, and this reply
        if reply.get("config_result"):
            render_message(len(messages) - 1, reply)
