"""The Knowledge page's feedback tab: what people rated in the chat, the questions the docs did not
cover, and the RAG eval set made from them (as a download for `tunepilot eval rag --questions`)."""

from __future__ import annotations

import streamlit as st

from assistant import feedback
from tunepilot.ui.widgets.i18n import column_labels, t

RATING_ICONS = {"up": "👍", "down": "👎"}


def _table(entries: list[dict]) -> list[dict]:
    return [{"when": e.get("updated_at", ""), "rating": RATING_ICONS.get(e.get("rating"), "—"),
             "question": e.get("question", ""), "correction": e.get("correction") or "",
             "sources": ", ".join(dict.fromkeys(c.get("source", "") for c in e.get("citations", [])))}
            for e in reversed(entries)]


def render_feedback_list() -> None:
    entries = feedback.list_entries()
    if not entries:
        st.info(t("knowledge.no_feedback"))
        return
    counts = feedback.summary(entries)
    for col, key in zip(st.columns(5), ("entries", "up", "down", "corrections", "declined")):
        col.metric(t(f"knowledge.fb_{key}"), counts[key])

    st.subheader(t("knowledge.declined_title"))
    st.caption(t("knowledge.declined_help"))
    declined = [e for e in entries if not e.get("grounded")]
    if declined:
        rows = [{k: v for k, v in r.items() if k != "sources"} for r in _table(declined)]
        st.dataframe(rows, hide_index=True, width="stretch", column_config=column_labels(rows[0]))
    else:
        st.caption(t("knowledge.no_declined"))

    st.subheader(t("knowledge.rated_title"))
    rated = [e for e in entries if e.get("grounded") and (e.get("rating") or e.get("correction"))]
    if rated:
        rows = _table(rated)
        st.dataframe(rows, hide_index=True, width="stretch", column_config=column_labels(rows[0]))
    else:
        st.caption(t("knowledge.no_rated"))

    rows, skipped = feedback.eval_rows(entries)
    st.download_button(t("knowledge.export_feedback", n=len(rows)), data=feedback.render_eval_set(rows),
                       file_name="feedback_eval.jsonl", mime="application/jsonl", disabled=not rows,
                       key="knowledge.export_feedback")
    st.caption(t("knowledge.export_help", skipped=len(skipped), path=str(feedback.store_path())))
