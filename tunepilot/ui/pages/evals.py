"""Evals page: upload a JSON/CSV test set, pick columns, models and scorers, run with progress, compare runs.

The run itself is `evals.runner.run_eval(spec)`, started in a background thread (tunepilot.ui.widgets.background)
and polled with a fragment, so a long run never freezes the page.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from evals.compare import compare
from evals.datasets import (
    EXPECTED_COLUMN_CANDIDATES,
    INPUT_COLUMN_CANDIDATES,
    load_dataset,
)
from evals.runner import run_eval
from evals.runstore import new_run_dir
from evals.scorers import SCORERS
from evals.spec import parse_spec
from trainer.models import registry as models
from tunepilot.ui.widgets import background
from tunepilot.ui.widgets.errors import shown_as_error
from tunepilot.ui.widgets.eval_view import (
    render_comparison,
    render_results,
    run_folders,
    run_models,
    scored_rows,
)
from tunepilot.ui.widgets.i18n import t
from tunepilot.ui.widgets.uploads import save_upload

ACCEPTED = (".json", ".jsonl", ".csv", ".tsv")
NONE = "—"

st.title(t("evals.title"))
st.caption(t("evals.intro"))
run_tab, compare_tab = st.tabs([t("evals.run_tab"), t("evals.compare_tab")])


def dataset_from_upload():
    """The uploaded file saved and loaded, or None (with one error line) when it is not usable."""
    upload = st.file_uploader(t("evals.upload"), key="evals.upload", help=t("evals.upload_help"))
    if upload is None:
        return None
    if Path(upload.name).suffix.lower() not in ACCEPTED:
        st.error(t("evals.bad_type", name=upload.name), icon="⚠️")
        return None
    path = save_upload(upload.name, upload.getvalue(), area="evals")
    with shown_as_error():
        return load_dataset(path)
    return None


def model_choices() -> tuple[list[str], list[str]]:
    """Every usable model id, and the pre-selected pair: the newest fine-tuned model and its base.

    Base vs fine-tuned is the comparison people come here for; without a fine-tuned model the
    built-in default is offered once it has been provisioned (converting it takes a while).
    """
    entries = models.list_models()
    ids = [e.id for e in entries]
    finetuned = sorted((e for e in entries if e.kind == "finetuned"), key=lambda e: e.created_at, reverse=True)
    if finetuned:
        newest = finetuned[0]
        defaults = [newest.base_model, newest.id] if newest.base_model else [newest.id]
    else:
        defaults = [e.id for e in entries if e.kind == "builtin" and e.extra.get("provisioned")]
    ids += [d for d in defaults if d not in ids]
    return ids, defaults


def guess_column(columns: list[str], candidates) -> str | None:
    by_name = {c.strip().lower(): c for c in columns}
    return next((by_name[name] for name in candidates if name in by_name), None)


def run_form(dataset) -> None:
    st.caption(t("evals.loaded", rows=len(dataset.rows), columns=len(dataset.columns), encoding=dataset.encoding))
    st.dataframe(dataset.rows[:20], hide_index=True, width="stretch")
    columns = list(dataset.columns)
    left, right = st.columns(2)
    # Pre-select what the library itself would guess, so the form starts where the CLI would.
    input_guess = guess_column(columns, INPUT_COLUMN_CANDIDATES) or columns[0]
    input_column = left.selectbox(t("evals.input_column"), columns, index=columns.index(input_guess), key="evals.input_column")
    expected_options = [NONE] + columns
    guess = guess_column([c for c in columns if c != input_column], EXPECTED_COLUMN_CANDIDATES) or NONE
    expected_column = right.selectbox(t("evals.expected_column"), expected_options,
                                      index=expected_options.index(guess), key="evals.expected_column")
    template = st.text_input(t("evals.template"), key="evals.template", help=t("evals.template_help"))
    model_ids, default_models = model_choices()
    chosen_models = st.multiselect(t("evals.models"), model_ids, default=default_models, key="evals.models",
                                   accept_new_options=True, help=t("evals.models_help"))
    scorer_names = sorted(SCORERS)
    default_scorers = [s for s in ("exact", "rouge_l", "latency") if s in SCORERS] if expected_column != NONE else \
        [s for s in ("latency",) if s in SCORERS]
    chosen_scorers = st.multiselect(t("evals.scorers"), scorer_names, default=default_scorers, key="evals.scorers")
    limits = st.columns(2)
    max_new_tokens = limits[0].number_input(t("evals.max_new_tokens"), min_value=1, value=64, key="evals.max_new_tokens")
    limit = limits[1].number_input(t("evals.limit"), min_value=0, value=0, key="evals.limit", help=t("evals.limit_help"))

    if st.button(t("evals.run"), type="primary", disabled=not chosen_models, key="evals.run"):
        with shown_as_error():
            spec = parse_spec({
                "dataset": dataset.path, "input_column": input_column,
                "expected_column": None if expected_column == NONE else expected_column,
                "template": template or None, "providers": list(chosen_models), "scorers": list(chosen_scorers),
                "generation": {"max_new_tokens": int(max_new_tokens)}, "limit": int(limit) or None,
            }, source=t("evals.form"))
            rows = min(len(dataset.rows), int(limit)) if limit else len(dataset.rows)
            st.session_state["evals.task"] = start_run(spec, total=rows * len(chosen_models)).id


def start_run(spec, total: int) -> background.Task:
    """Run the eval in a thread, in a run folder chosen here so the page can watch its results file grow."""
    spec = spec.model_copy(update={"out": str(new_run_dir(spec.dataset))})
    task = background.start("eval", lambda task: run_eval(spec, progress=False))
    task.note, task.total = spec.out, total
    return task


@st.fragment(run_every=1.0)
def follow_run(task_id: str) -> None:
    task = background.get(task_id)
    if task is None:
        return
    if task.state == "running":
        # The runner appends one line per scored row to results.jsonl as it goes: that is the progress.
        task.done = scored_rows(Path(task.note))
        label = t("evals.progress", done=task.done, total=task.total or "?")
        st.progress(task.fraction, text=label)
        return
    # Finished: redraw the whole page, which shows the outcome and stops this polling.
    st.rerun()


with run_tab:
    dataset = dataset_from_upload()
    if dataset is not None:
        run_form(dataset)
    task = background.get(st.session_state.get("evals.task"))
    background.show(task, lambda: follow_run(task.id), render_results)

with compare_tab:
    runs = [str(r) for r in run_folders()]
    if not runs:
        st.info(t("evals.compare_need_runs"))
    else:
        a_col, b_col = st.columns(2)
        run_a = a_col.selectbox(t("evals.run_a"), runs, format_func=lambda p: Path(p).name, key="evals.run_a")
        models_a = run_models(Path(run_a))
        model_a = a_col.selectbox(t("evals.model_a"), models_a, key="evals.model_a")
        run_b = b_col.selectbox(t("evals.run_b"), runs, format_func=lambda p: Path(p).name, key="evals.run_b")
        models_b = run_models(Path(run_b))
        # Within one run the natural pair is base (first) against the other model.
        others = [m for m in models_b if not (run_b == run_a and m == model_a)] or models_b
        model_b = b_col.selectbox(t("evals.model_b"), others, key="evals.model_b")
        if st.button(t("evals.compare"), key="evals.compare"):
            with shown_as_error():
                st.session_state["evals.comparison"] = compare(run_a, run_b, model_a=model_a, model_b=model_b)
        if st.session_state.get("evals.comparison"):
            render_comparison(st.session_state["evals.comparison"])
