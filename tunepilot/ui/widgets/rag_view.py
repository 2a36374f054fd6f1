"""The Knowledge page's answer-quality tab: the last RAG self-evaluation (`tunepilot eval rag`), and a
question file to run a new one on the chosen collection."""

from __future__ import annotations

import streamlit as st

from evals import rag
from tunepilot.ui.widgets import background
from tunepilot.ui.widgets.i18n import column_labels, t
from tunepilot.ui.widgets.uploads import save_upload

TASK_KEY = "knowledge.rag_task"
ROW_COLUMNS = ("row", "question", "hit", "rank", "answer_contains_fact", "citation_support", "declined",
               "should_decline", "error")


def _start(path: str, k: int, collection: str) -> None:
    from assistant.rag_eval import evaluate_file

    st.session_state[TASK_KEY] = background.start(
        "rag", lambda task: evaluate_file(path, k=k, collection=collection, on_progress=task.progress)).id


@st.fragment(run_every=1.0)
def _follow(task_id: str) -> None:
    task = background.get(task_id)
    if task is not None and task.state == "running":
        st.progress(task.fraction, text=t("knowledge.rag_running", done=task.done, total=task.total or "?"))
        return
    st.rerun()


def render_result(result: dict) -> None:
    st.caption(t("knowledge.rag_meta", file=result.get("questions_file", ""), when=result.get("created_at", ""),
                 k=result.get("k"), n=result["counts"]["questions"], collection=result.get("collection", "")))
    metrics, support = result["metrics"], result["support"]
    names = list(rag.METRICS)
    for start in range(0, len(names), 4):
        for col, name in zip(st.columns(4), names[start:start + 4]):
            value = metrics.get(name)
            col.metric(t(f"knowledge.rag_{name}", k=result.get("k")), "—" if value is None else f"{value:.2f}",
                       help=t("knowledge.rag_support", n=support.get(name, 0)))
    for note in result.get("notices", []):
        st.caption(f"⚠️ {note}")
    rows = [{c: r.get(c) for c in ROW_COLUMNS} for r in result.get("rows", [])]
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", column_config=column_labels(ROW_COLUMNS))


def render_rag_tab(collection: str) -> None:
    upload = st.file_uploader(t("knowledge.rag_upload"), type=["jsonl", "json", "csv"], key="knowledge.rag_upload",
                              help=t("knowledge.rag_upload_help"))
    k = st.number_input(t("knowledge.k"), min_value=1, max_value=50, value=5, key="knowledge.rag_k")
    if st.button(t("knowledge.rag_run"), disabled=upload is None, key="knowledge.rag_run"):
        _start(str(save_upload(upload.name, upload.getvalue(), area="rag")), int(k), collection)
    task = background.get(st.session_state.get(TASK_KEY))
    background.show(task, lambda: _follow(task.id), lambda result: None)
    latest = rag.latest_result()
    if latest is None:
        st.info(t("knowledge.rag_none"))
        return
    st.subheader(t("knowledge.rag_last"))
    render_result(latest)
