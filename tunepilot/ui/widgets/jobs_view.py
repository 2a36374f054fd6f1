"""Turn a job's events into what the Jobs page draws: a metrics table, a log table, sample generations."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

ACTIVE_STATES = ("validating_files", "queued", "running")
METRIC_COLUMNS = ["step", "epoch", "loss", "learning_rate", "tokens_per_second", "peak_memory_mb"]


def when(timestamp) -> str:
    """A Unix timestamp as local `YYYY-MM-DD HH:MM:SS` (empty for none)."""
    if not timestamp:
        return ""
    return datetime.fromtimestamp(float(timestamp)).strftime("%Y-%m-%d %H:%M:%S")


def metrics_frame(events: list[dict]) -> pd.DataFrame:
    """One row per `metrics` event, ordered by step (the loss chart's data)."""
    rows = [{col: (e.get("data") or {}).get(col) for col in METRIC_COLUMNS}
            for e in events if e.get("type") == "metrics" and (e.get("data") or {}).get("step") is not None]
    frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    return frame.sort_values("step").reset_index(drop=True) if not frame.empty else frame


def log_frame(events: list[dict]) -> pd.DataFrame:
    """The events log, newest last, as the page's table."""
    return pd.DataFrame(
        [{"time": when(e.get("created_at")), "level": e.get("level", ""), "type": e.get("type", ""), "message": e.get("message", "")}
         for e in events],
        columns=["time", "level", "type", "message"],
    )


def sample_events(events: list[dict]) -> list[dict]:
    """The `sample` events (generations from the sampling prompts during training)."""
    return [e for e in events if e.get("type") == "sample"]


def jobs_frame(jobs: list[dict]) -> pd.DataFrame:
    """The jobs table: newest first, the fields a person scans for."""
    return pd.DataFrame(
        [{"id": j["id"], "status": j.get("status", ""), "model": j.get("model", ""),
          "fine_tuned_model": j.get("fine_tuned_model") or "", "created": when(j.get("created_at")),
          "finished": when(j.get("finished_at")), "trained_tokens": j.get("trained_tokens")}
         for j in sorted(jobs, key=lambda j: j.get("created_at") or 0, reverse=True)],
        columns=["id", "status", "model", "fine_tuned_model", "created", "finished", "trained_tokens"],
    )
