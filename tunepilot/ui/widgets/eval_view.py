"""Draw an eval run's outcome (scores per model and scorer) and a comparison of two runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from tunepilot.core import workspace
from tunepilot.ui.widgets.i18n import column_labels, t


def scores_frame(result: dict) -> pd.DataFrame:
    """One row per model, one column per scorer (mean score), plus the model's error count."""
    rows = []
    for model, summary in (result.get("models") or {}).items():
        row = {"model": model, **{name: value for name, value in (summary.get("scores") or {}).items()}}
        if summary.get("pass_rate") is not None:
            row["pass_rate"] = summary["pass_rate"]
        row["errors"] = summary.get("errors", 0)
        rows.append(row)
    return pd.DataFrame(rows)


def scores_chart(long: pd.DataFrame):
    """Grouped bars, one group per scorer and one bar per model, on a fixed 0..1 axis (so zeros look like zeros)."""
    import altair as alt

    return alt.Chart(long).mark_bar().encode(
        x=alt.X("scorer:N", title=None, axis=alt.Axis(labelAngle=0)),
        xOffset="model:N",
        y=alt.Y("score:Q", title=t("evals.score"), scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", title=t("col.model"), legend=alt.Legend(orient="bottom", labelLimit=600)),
        tooltip=["model", "scorer", alt.Tooltip("score:Q", format=".3f")],
    ).properties(height=260)


def render_results(result: dict) -> None:
    """The results table, a bar chart of the bounded scores, and where the run's files are."""
    st.subheader(t("evals.results"))
    st.caption(t("evals.results_meta", rows=result.get("rows", 0), run_dir=result.get("run_dir", "")))
    table = scores_frame(result)
    st.dataframe(table, hide_index=True, width="stretch", column_config=column_labels(table.columns))
    # Only scores on a 0..1 scale share one chart; latency (seconds) and perplexity would flatten it.
    bounded = [s["name"] for s in result.get("scorers") or [] if s.get("bounded")]
    long = table.melt(id_vars="model", value_vars=[c for c in bounded if c in table.columns], var_name="scorer", value_name="score")
    long = long.dropna()
    if not long.empty:
        st.altair_chart(scores_chart(long), width="stretch")
    for notice in result.get("notices") or []:
        st.caption(f"ℹ️ {notice}")
    if result.get("run_dir"):
        with st.expander(t("evals.rows")):
            rows = rows_frame(result["run_dir"])
            st.dataframe(rows, hide_index=True, width="stretch", column_config=column_labels(rows.columns))


def scored_rows(run_dir: Path) -> int:
    """How many (model, row) results a running eval has written so far."""
    from evals.runstore import RESULTS_FILE

    path = run_dir / RESULTS_FILE
    if not path.is_file():
        return 0
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def rows_frame(run_dir: str) -> pd.DataFrame:
    """Per-row results of a run: model, input, expected, output, overall score, error."""
    from evals.runstore import load_run

    _, records = load_run(run_dir)
    return pd.DataFrame(
        [{"model": r["model"], "row": r["row"], "input": r.get("input"), "expected": r.get("expected"),
          "output": r.get("output"), "overall": r.get("overall"), "error": r.get("error") or ""}
         for r in sorted(records, key=lambda r: (r["row"], r["model"]))]
    )


def run_folders() -> list[Path]:
    """Finished eval runs under the workspace, newest first."""
    root = workspace.evals_dir()
    # A run folder gets its summary.json when the run completes; folders without one are unfinished.
    runs = [p for p in root.iterdir() if (p / "summary.json").is_file()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def run_models(run_dir: Path) -> list[str]:
    """The models a finished run scored, in report order (base first, by convention)."""
    from evals.runstore import SUMMARY_FILE

    summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
    return list(summary.get("models") or {})


def comparison_frame(comparison: dict) -> pd.DataFrame:
    """One row per scorer: A's mean, B's mean, the difference with its 95% interval, wins/losses/ties, verdict."""
    rows = []
    for name, s in (comparison.get("scorers") or {}).items():
        ci = s.get("ci95")
        rows.append({"scorer": name, "A": s["mean_a"], "B": s["mean_b"], "B - A": s["mean_diff"],
                     "95% CI": f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "", "wins": s["wins"],
                     "losses": s["losses"], "ties": s["ties"], "verdict": s["verdict"]})
    return pd.DataFrame(rows)


def render_comparison(comparison: dict) -> None:
    """The result of `evals.compare.compare`: per-scorer verdicts, then the paired rows side by side."""
    a, b = comparison["a"], comparison["b"]
    st.markdown(t("evals.compare_pair", a=f"{Path(a['run_dir']).name} · {a['model']}", b=f"{Path(b['run_dir']).name} · {b['model']}",
                  n=comparison.get("paired_rows", 0)))
    verdicts = comparison_frame(comparison)
    st.dataframe(verdicts, hide_index=True, width="stretch", column_config=column_labels(verdicts.columns))
    for notice in comparison.get("notices") or []:
        st.caption(f"ℹ️ {notice}")
    rows = pd.DataFrame([{"row": r["row"], "input": r.get("input"), "expected": r.get("expected"),
                          "A": r.get("output_a"), "B": r.get("output_b")} for r in comparison.get("rows") or []])
    with st.expander(t("evals.rows")):
        st.dataframe(rows, hide_index=True, width="stretch", column_config=column_labels(rows.columns))
