"""The run folder on disk: where each file lives, appending per-row results, reading them back.

Per-row results are appended to results.jsonl (one JSON object per row per model) and flushed as
they are scored, so a run killed half-way keeps everything scored so far and a re-run with the same
folder picks up where it stopped. A later record for the same (model, row key) supersedes an
earlier one; `compact` rewrites the file with the surviving records once a run completes.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from evals.errors import EvalError
from tunepilot.core import atomic

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
CSV_FILE = "results.csv"
HTML_FILE = "report.html"
SPEC_FILE = "spec.json"


def new_run_dir(dataset_path: str) -> Path:
    from tunepilot.core import workspace

    stem = re.sub(r"[^\w.-]+", "-", Path(dataset_path).stem).strip("-")[:40] or "eval"
    base = workspace.evals_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def append_record(run_dir: Path, record: dict) -> None:
    with (run_dir / RESULTS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()


def read_records(run_dir: str | Path) -> list[dict]:
    """All records in file order; a line cut short by a crash is ignored."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def latest_records(records: list[dict]) -> dict[tuple[str, str], dict]:
    latest: dict[tuple[str, str], dict] = {}
    for rec in records:
        latest[(rec["model"], rec["key"])] = rec
    return latest


def compact(run_dir: Path, records: list[dict]) -> None:
    """Rewrite results.jsonl with `records` only, atomically: a crash keeps the longer, still valid file."""
    with atomic.open_atomic(run_dir / RESULTS_FILE, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def write_json(path: Path, data) -> None:
    atomic.write_json(path, data, default=str)


def load_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """(summary, final records) of a finished (or partly finished) run folder."""
    folder = Path(run_dir).expanduser()
    if not folder.is_dir():
        raise EvalError(f"{folder} is not an eval run folder; pass the run_dir printed by `tunepilot eval run`.")
    records = list(latest_records(read_records(folder)).values())
    summary_path = folder / SUMMARY_FILE
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    if not records:
        raise EvalError(f"{folder} holds no scored rows ({RESULTS_FILE} missing or empty); run `tunepilot eval run --out {folder}` first.")
    return summary, records
