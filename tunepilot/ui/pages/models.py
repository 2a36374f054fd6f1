"""Models page: base and fine-tuned models; one prompt on base, adapter and merged side by side; merge; GGUF export."""

from __future__ import annotations

import streamlit as st

from trainer.models import registry as models
from tunepilot.core import workspace
from tunepilot.core.errors import is_user_error, one_line
from tunepilot.ui.widgets import background
from tunepilot.ui.widgets.i18n import column_labels, t
from tunepilot.ui.widgets.merged import merged_folder
from tunepilot.ui.widgets.model_cache import reply

st.title(t("models.title"))
st.caption(t("models.intro"))

entries = models.list_models()
st.dataframe(
    [{"id": e.id, "kind": e.kind, "base_model": e.base_model or "", "path": e.path} for e in entries],
    hide_index=True, width="stretch", column_config=column_labels(["id", "kind", "base_model", "path"]),
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



def start_merge(model_id: str) -> None:
    from trainer.training.merge import merge

    st.session_state["models.merge_task"] = background.start("merge", lambda task: merge(model_id)).id


def start_generation(names: list[str | None], prompt: str, max_new_tokens: int) -> None:
    """Generate with each model in turn, in a thread; each reply shows up as soon as it is ready."""

    def work(task: background.Task) -> dict:
        replies: dict[int, str] = {}
        task.result, task.total = replies, sum(1 for n in names if n)
        for index, name in enumerate(names):
            if not name:
                continue
            try:
                replies[index] = reply(name, prompt, max_new_tokens)
            except Exception as exc:
                if not is_user_error(exc):
                    raise
                replies[index] = f"⚠️ {one_line(exc)}"
            task.done += 1
        return replies

    st.session_state["models.generate_task"] = background.start("generate", work).id


def render_cells(columns: list[tuple[str, str | None]], task: background.Task | None) -> None:
    replies = (task.result or {}) if task else {}
    for index, (cell, (label, name)) in enumerate(zip(st.columns(len(columns)), columns)):
        with cell:
            st.markdown(f"**{label}**")
            st.caption(name or t("models.not_merged"))
            if index in replies:
                st.text(replies[index])
            elif task is not None and task.state == "running" and name:
                st.caption(f"⏳ {t('models.generating')}")


def start_export(model_id: str, out: str, dtype: str, ollama: bool, overwrite: bool) -> None:
    from trainer.training.export import export_gguf

    st.session_state["models.export_task"] = background.start(
        "export", lambda task: export_gguf(model_id, out, dtype=dtype, ollama=ollama, overwrite=overwrite).to_dict()).id


@st.fragment(run_every=1.0)
def follow(task_key: str, columns: list[tuple[str, str | None]] | None = None, label: str = "models.merging") -> None:
    """Poll a background merge, export or generation; redraw the whole page once it is over."""
    task = background.get(st.session_state.get(task_key))
    if task is None or task.state != "running":
        st.rerun()
    if columns is None:
        st.status(t(label), state="running")
    else:
        render_cells(columns, task)


merge_task = background.get(st.session_state.get("models.merge_task"))
if entry and merged is None and not (merge_task and merge_task.state == "running"):
    if st.button(t("models.merge"), key="models.merge", help=t("models.merge_help")):
        start_merge(entry.id)
        merge_task = background.get(st.session_state["models.merge_task"])
background.show(merge_task, lambda: follow("models.merge_task"), lambda outcome: st.success(
    t("models.merged_ok", path=outcome["output_dir"], diff=f"{outcome.get('max_logit_diff', 0):.2e}"), icon="🧩"))

generate_task = background.get(st.session_state.get("models.generate_task"))
busy = generate_task is not None and generate_task.state == "running"
if st.button(t("models.try"), type="primary", disabled=not prompt.strip() or busy, key="models.try"):
    start_generation([name for _, name in columns], prompt, int(max_new_tokens))
    generate_task = background.get(st.session_state["models.generate_task"])
if generate_task is not None and generate_task.state == "running":
    follow("models.generate_task", columns)
else:
    if generate_task is not None and generate_task.state == "failed":
        st.error(generate_task.error, icon="⚠️")
    render_cells(columns, generate_task)

st.subheader(t("models.export"))
st.caption(t("models.export_intro"))
export_id = st.selectbox(t("models.export_model"), [e.id for e in entries], key="models.export_model")
export_dtype = st.selectbox(t("models.export_dtype"), ["f16", "bf16", "q8_0"], key="models.export_dtype")
default_out = str(workspace.subdir("exports") / f"{(export_id or 'model').replace(':', '_').replace('/', '_')}-{export_dtype}")
export_out = st.text_input(t("models.export_out"), value=default_out, key=f"models.export_out.{default_out}")
export_ollama = st.checkbox(t("models.export_ollama"), value=True, key="models.export_ollama")
export_overwrite = st.checkbox(t("models.export_overwrite"), value=False, key="models.export_overwrite")
export_task = background.get(st.session_state.get("models.export_task"))
exporting = export_task is not None and export_task.state == "running"
if st.button(t("models.export_start"), key="models.export_start", disabled=exporting or not export_id):
    start_export(export_id, export_out, export_dtype, export_ollama, export_overwrite)
    export_task = background.get(st.session_state["models.export_task"])
background.show(export_task, lambda: follow("models.export_task", label="models.exporting"), lambda outcome: st.success(
    t("models.exported_ok", path=outcome["gguf_path"], size=f"{outcome['size_bytes'] / 1e6:.1f}",
      diff=f"{outcome['max_logit_diff']:.2e}", yardstick=f"{outcome['bf16_rounding_logit_diff']:.2e}"), icon="📦"))
