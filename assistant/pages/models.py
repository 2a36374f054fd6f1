"""Models page: base and fine-tuned models; one prompt on base, adapter and merged side by side; merge."""

from __future__ import annotations

import streamlit as st

from assistant.ui.errors import shown_as_error
from assistant.ui.i18n import t
from assistant.ui.model_cache import reply
from assistant.ui.merged import merged_folder
from trainer import models

st.title(t("models.title"))
st.caption(t("models.intro"))

entries = models.list_models()
st.dataframe(
    [{"id": e.id, "kind": e.kind, "base_model": e.base_model or "", "path": e.path} for e in entries],
    hide_index=True, width="stretch",
)

finetuned = [e for e in entries if e.kind == "finetuned"]
if not finetuned:
    st.info(t("models.no_finetuned"))
    st.page_link("pages/jobs.py", label=t("models.go_jobs"), icon="🏋️")

st.subheader(t("models.compare"))
chosen = st.selectbox(t("models.pick_finetuned"), [e.id for e in finetuned], key="models.finetuned") if finetuned else None
base_choice = st.selectbox(t("models.pick_base"), [e.id for e in entries if e.kind != "finetuned"], key="models.base",
                           accept_new_options=True, help=t("models.pick_base_help")) if not chosen else None
entry = next((e for e in finetuned if e.id == chosen), None)

prompt = st.text_area(t("models.prompt"), key="models.prompt", placeholder=t("models.prompt_placeholder"))
max_new_tokens = st.slider(t("models.max_new_tokens"), 8, 512, 96, key="models.max_new_tokens")

# The three columns: the base model, the ft: adapter on it, and the merged standalone folder.
base_name = (entry.base_model if entry else base_choice) or models.DEFAULT_MODEL
merged = merged_folder(entry) if entry else None
columns = [(t("models.base"), base_name)]
if entry:
    columns.append((t("models.adapter"), entry.id))
    columns.append((t("models.merged"), str(merged) if merged else None))

if entry and merged is None:
    if st.button(t("models.merge"), key="models.merge", help=t("models.merge_help")):
        from trainer.merge import merge

        with shown_as_error(), st.spinner(t("models.merging")):
            outcome = merge(entry.id)
            st.session_state["models.merge_result"] = outcome
            st.rerun()
if st.session_state.get("models.merge_result"):
    outcome = st.session_state["models.merge_result"]
    st.success(t("models.merged_ok", path=outcome["output_dir"], diff=f"{outcome.get('max_logit_diff', 0):.2e}"), icon="🧩")

run = st.button(t("models.try"), type="primary", disabled=not prompt.strip(), key="models.try")
cells = st.columns(len(columns))
for index, (cell, (label, name)) in enumerate(zip(cells, columns)):
    with cell:
        st.markdown(f"**{label}**")
        st.caption(name or t("models.not_merged"))
        if run and name:
            with shown_as_error(), st.spinner(t("models.generating")):
                st.session_state[f"models.reply.{index}"] = reply(name, prompt, int(max_new_tokens))
        if name and st.session_state.get(f"models.reply.{index}") is not None:
            st.text(st.session_state[f"models.reply.{index}"])
