"""Write a run's reports next to its results.jsonl and summary.json: results.csv and report.html.

results.csv has one line per row per model (prompt, expected, reply, error, latency, one column per
scorer) and is written as UTF-8 with a byte-order mark — without the mark, Excel on Chinese Windows
opens UTF-8 CSV as GBK and shows mojibake.
"""

from __future__ import annotations

import csv
from pathlib import Path

from evals import runstore
from evals.html_report import render_html


def score_names(summary: dict, records: list[dict]) -> list[str]:
    names = [s["name"] for s in summary.get("scorers", [])]
    for rec in records:
        for name in rec.get("scores", {}):
            if name not in names:
                names.append(name)
    return names


def write_csv(path: Path, summary: dict, records: list[dict]) -> Path:
    names = score_names(summary, records)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "model", "input", "expected", "output", "error", "latency_s", "overall", "passed", *names])
        for rec in sorted(records, key=lambda r: (r["row"], r["model"])):
            scores = rec.get("scores", {})
            writer.writerow([
                rec["row"], rec["model"], rec.get("input") or "", rec.get("expected") or "", rec.get("output") or "",
                rec.get("error") or "", _num(rec.get("latency_s")), _num(rec.get("overall")),
                "" if rec.get("passed") is None else str(rec["passed"]).lower(),
                *[_num(scores.get(n)) for n in names],
            ])
    return path


def _num(value) -> str:
    return "" if value is None else f"{value:.6g}"


def write_reports(run_dir: Path, summary: dict, records: list[dict]) -> dict[str, str]:
    """Write results.csv and report.html; returns their paths."""
    run_dir = Path(run_dir)
    csv_path = write_csv(run_dir / runstore.CSV_FILE, summary, records)
    html_path = run_dir / runstore.HTML_FILE
    html_path.write_text(render_html(summary, records), encoding="utf-8")
    return {"csv": str(csv_path), "html": str(html_path)}
