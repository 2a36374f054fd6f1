"""Knowledge page: add documents to an index (a folder path or uploaded files), index stats, a search playground,
the feedback on chat answers (with the questions the docs did not cover) and the last RAG self-evaluation."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from knowledge.ingest import ingest
from knowledge.retrieval import search, warm_up
from tunepilot.ui.widgets import background
from tunepilot.ui.widgets.errors import shown_as_error
from tunepilot.ui.widgets.feedback_view import render_feedback_list
from tunepilot.ui.widgets.rag_view import render_rag_tab
from tunepilot.ui.widgets.i18n import column_labels, t
from tunepilot.ui.widgets.index_stats import collection_stats
from tunepilot.ui.widgets.uploads import save_upload

st.title(t("knowledge.title"))
st.caption(t("knowledge.intro"))
collection = st.text_input(t("knowledge.collection"), value="default", key="knowledge.collection")

stats_tab, ingest_tab, search_tab, feedback_tab, rag_tab = st.tabs([
    t("knowledge.stats_tab"), t("knowledge.ingest_tab"), t("knowledge.search_tab"), t("knowledge.feedback_tab"),
    t("knowledge.rag_tab")])


def start_ingest(paths: list[str]) -> None:
    name = collection
    st.session_state["knowledge.task"] = background.start(
        "ingest", lambda task: ingest(paths, collection=name, progress=False).to_dict()).id


@st.fragment(run_every=1.0)
def follow_ingest(task_id: str) -> None:
    task = background.get(task_id)
    if task is not None and task.state == "running":
        st.status(t("knowledge.ingesting"), state="running")
        return
    st.rerun()


def show_ingested(summary: dict) -> None:
    st.success(t("knowledge.ingested"), icon="📥")
    st.json(summary, expanded=True)


with ingest_tab:
    folder = st.text_input(t("knowledge.folder"), key="knowledge.folder", help=t("knowledge.folder_help"))
    uploads = st.file_uploader(t("knowledge.upload"), accept_multiple_files=True, key="knowledge.upload",
                               type=["md", "txt", "html", "htm", "pdf", "rst"])
    if st.button(t("knowledge.ingest"), type="primary", disabled=not (folder or uploads), key="knowledge.ingest"):
        paths: list[str] = []
        if folder:
            target = Path(folder).expanduser()
            if not target.exists():
                st.error(t("knowledge.missing_folder", path=folder), icon="⚠️")
            else:
                paths.append(str(target))
        if uploads:
            # One folder for this batch, so `source` reads as the uploaded file's own name.
            saved = [save_upload(u.name, u.getvalue(), area="knowledge") for u in uploads]
            paths.extend(str(p) for p in saved)
        if paths:
            start_ingest(paths)
    task = background.get(st.session_state.get("knowledge.task"))
    background.show(task, lambda: follow_ingest(task.id), show_ingested)

with stats_tab:
    with shown_as_error():
        stats = collection_stats(collection)
        if stats is None:
            st.info(t("knowledge.no_collection", name=collection))
            if collection == "default" and st.button(t("knowledge.build_default"), key="knowledge.build"):
                with st.spinner(t("knowledge.ingesting")):
                    warm_up("default")
                st.rerun()
        else:
            cols = st.columns(3)
            cols[0].metric(t("knowledge.documents"), stats["documents"])
            cols[1].metric(t("knowledge.chunks"), stats["chunks"])
            cols[2].metric(t("knowledge.languages"), " · ".join(f"{k} {v}" for k, v in stats["languages"].items()) or "—")
            st.caption(t("knowledge.location", path=stats["location"]))
            st.dataframe(stats["largest"], hide_index=True, width="stretch", column_config=column_labels(["source", "chunks"]))

with search_tab:
    query = st.text_input(t("knowledge.query"), key="knowledge.query", placeholder=t("knowledge.query_placeholder"))
    k = st.slider(t("knowledge.k"), 1, 20, 5, key="knowledge.k")
    if query:
        with shown_as_error(), st.spinner(t("knowledge.searching")):
            hits = search(query, k=k, collection=collection)
            if not hits:
                st.info(t("knowledge.no_hits"))
            for hit in hits:
                with st.container(border=True):
                    st.markdown(f"**{hit.rank}. {hit.source}** › {hit.heading or ''}  ·  `{hit.score:.3f}` · {hit.lang}")
                    st.markdown(hit.text)

with feedback_tab, shown_as_error():
    render_feedback_list()

with rag_tab, shown_as_error():
    render_rag_tab(collection)
