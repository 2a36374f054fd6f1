"""Jobs page: every training job and its state; the selected job's live loss, log, samples, controls and card.

Jobs run as background worker processes and their state lives in SQLite, so this page only reads:
it polls the selected job with a fragment while the job is active, and a server restart loses
nothing (the page picks the job up again from the database).
"""

from __future__ import annotations

import streamlit as st

from trainer import jobs
from tunepilot.ui.widgets.errors import shown_as_error
from tunepilot.ui.widgets.i18n import column_labels, t
from tunepilot.ui.widgets.job_card import find_job_card
from tunepilot.ui.widgets.jobs_view import (
    ACTIVE_STATES,
    jobs_frame,
    log_frame,
    metrics_frame,
    sample_events,
    when,
)

POLL_SECONDS = 2.0

st.title(t("jobs.title"))
st.caption(t("jobs.intro"))

all_jobs = jobs.list_jobs()
if not all_jobs:
    st.info(t("jobs.none"))
    st.page_link("pages/chat.py", label=t("jobs.go_chat"), icon="💬")
    st.stop()

table = jobs_frame(all_jobs)
ids = list(table["id"])
# Show the states in the interface language; ids and everything else stay as the library gives them.
shown = table.assign(status=[t("status." + status) for status in table["status"]])
st.dataframe(shown, hide_index=True, width="stretch", column_config=column_labels(shown.columns))

if st.session_state.get("jobs.selected") not in ids:
    st.session_state["jobs.selected"] = ids[0]
selected = st.selectbox(t("jobs.select"), ids, key="jobs.selected")


def render_controls(job: dict) -> None:
    cancel_col, pause_col, resume_col, _ = st.columns([1, 1, 1, 3])
    status = job["status"]
    if cancel_col.button(t("jobs.cancel"), disabled=status not in (*ACTIVE_STATES, "paused"), key="jobs.cancel"):
        with shown_as_error():
            jobs.cancel_job(job["id"])
            st.rerun()
    if pause_col.button(t("jobs.pause"), disabled=status not in ("queued", "running"), key="jobs.pause"):
        with shown_as_error():
            jobs.pause_job(job["id"])
            st.rerun()
    if resume_col.button(t("jobs.resume"), disabled=status not in ("paused", "failed", "cancelled"), key="jobs.resume"):
        with shown_as_error():
            jobs.resume_job(job["id"])
            st.rerun()


def render_checkpoints(job_id: str) -> None:
    """The kept checkpoints with their metrics; the model id column is what chat and evals accept."""
    checkpoints = jobs.job_checkpoints(job_id)
    if not checkpoints:
        return
    rows = [{"step": c["step_number"], "model": c["fine_tuned_model_checkpoint"],
             **{k: c["metrics"][k] for k in ("train_loss", "train_mean_token_accuracy", "valid_loss",
                                              "valid_mean_token_accuracy")}} for c in checkpoints]
    with st.expander(t("jobs.checkpoints", n=len(rows))):
        st.dataframe(rows, hide_index=True, width="stretch")


def render_job(job_id: str, polling: bool) -> None:
    job = jobs.get_job(job_id)
    if polling and job["status"] not in ACTIVE_STATES:
        # The job just finished: redraw the whole page so the table updates and polling stops.
        st.rerun()
    status = job["status"]
    st.subheader(f"{job_id} · {t('status.' + status)}")
    facts = [
        f"{t('jobs.model')}: `{job.get('model') or ''}`",
        f"{t('jobs.created')}: {when(job.get('created_at'))}",
        f"{t('jobs.finished')}: {when(job.get('finished_at')) or '—'}",
        f"{t('jobs.trained_tokens')}: {job.get('trained_tokens') or 0}",
    ]
    st.markdown("  ·  ".join(facts))
    if job.get("fine_tuned_model"):
        st.success(t("jobs.fine_tuned", model=job["fine_tuned_model"]), icon="🎉")
    if job.get("error"):
        error = job["error"]
        st.error(error.get("message", str(error)) if isinstance(error, dict) else str(error))
    st.caption(t("jobs.output_dir", path=job.get("output_dir", "")))
    render_controls(job)

    events = jobs.job_events(job_id)
    metrics = metrics_frame(events)
    st.markdown(f"**{t('jobs.loss')}**")
    if metrics.empty:
        st.caption(t("jobs.no_metrics"))
    else:
        last = metrics.iloc[-1]
        tiles = st.columns(4)
        tiles[0].metric(t("jobs.step"), int(last["step"]))
        tiles[1].metric(t("jobs.last_loss"), f"{last['loss']:.4f}" if last["loss"] is not None else "—")
        tiles[2].metric(t("jobs.tokens_per_second"), f"{last['tokens_per_second']:.0f}" if last["tokens_per_second"] else "—")
        tiles[3].metric(t("jobs.peak_memory"), f"{last['peak_memory_mb']:.0f} MB" if last["peak_memory_mb"] else "—")
        st.line_chart(metrics.dropna(subset=["loss"]), x="step", y="loss", height=260)

    render_checkpoints(job_id)

    samples = sample_events(events)
    if samples:
        with st.expander(t("jobs.samples", n=len(samples)), expanded=status not in ACTIVE_STATES):
            for event in samples:
                data = event.get("data") or {}
                st.markdown(f"**{t('jobs.step')} {data.get('step', '?')}** · `{data.get('prompt', '')}`")
                st.text(data.get("completion") or data.get("output") or event.get("message", ""))
    with st.expander(t("jobs.events", n=len(events))):
        log = log_frame(events)
        st.dataframe(log, hide_index=True, width="stretch", column_config=column_labels(log.columns))

    card = find_job_card(job)
    if card is not None:
        with st.expander(t("jobs.card"), expanded=True):
            st.markdown(card)


job_now = jobs.get_job(selected)
live = job_now["status"] in ACTIVE_STATES
if live:
    st.caption(t("jobs.polling", seconds=int(POLL_SECONDS)))
st.fragment(run_every=POLL_SECONDS if live else None)(render_job)(selected, live)
