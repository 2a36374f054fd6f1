"""Draw an eval run's outcome (scores per model and scorer) and a comparison of two runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from assistant.ui.i18n import t
from trainer import workspace


def scores_frame(result: dict) -> pd.DataFrame:
    """One row per model, one column per scorer (mean score), plus the model's error count."""
    rows = []
    for model, summary in (result.get("models") or {}).items():
        row = {"model": model, **{name: value for name, value in (summary.get("scores") or {}).items()}}
        row["errors"] = summary.get("errors", 0)
        rows.append(row)
    return pd.DataFrame(rows)


def render_results(result: dict) -> None:
    """The results table, a bar chart of the bounded scores, and where the run's files are."""
    st.subheader(t("evals.results"))
    st.caption(t("evals.results_meta", rows=result.get("rows", 0), run_dir=result.get("run_dir", "")))
    table = scores_frame(result)
    st.dataframe(table, hide_index=True, width="stretch")
    long = table.drop(columns=["errors"], errors="ignore").melt(id_vars="model", var_name="scorer", value_name="score")
    long = long[long["scorer"] != "latency"].dropna()
    if not long.empty:
        st.bar_chart(long, x="scorer", y="score", color="model", stack=False, height=280)


def run_folders() -> list[Path]:
    """Finished eval runs under the workspace, newest first."""
    root = workspace.evals_dir()
    runs = [p for p in root.iterdir() if p.is_dir() and any(p.glob("*.json"))]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def render_comparison(comparison: dict) -> None:
    """Whatever `evals.compare.compare` returns: the summary tables it holds, shown as tables."""
    st.json(comparison, expanded=False)
