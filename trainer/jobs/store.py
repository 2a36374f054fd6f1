"""The job store: one SQLite file of fine-tuning jobs and their events, and the OpenAI-shaped job dict.

State lives in `tunepilot.core.workspace.jobs_db_path()` in WAL mode, so the CLI, the Streamlit UI,
the API server and the workers can read and write it at the same time. This module only stores
and reads; starting, stopping and noticing dead workers is `trainer.jobs.queue`'s business.

Columns added after the first release (`_ADDED_COLUMNS`) are added to an older database on first
connect, so a workspace made by an earlier version keeps its jobs.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import time
from contextlib import contextmanager

from trainer.planning.schema import TrainConfig
from tunepilot.core import workspace
from tunepilot.core.errors import UserError

TERMINAL = ("succeeded", "failed", "cancelled")
# States a job does not leave by itself: the final ones, and `paused` (it waits for a resume).
SETTLED = (*TERMINAL, "paused")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    fine_tuned_model TEXT,
    suffix TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    error TEXT,
    hyperparameters TEXT NOT NULL,
    trained_tokens INTEGER,
    result_files TEXT NOT NULL DEFAULT '[]',
    output_dir TEXT NOT NULL,
    config TEXT NOT NULL,
    skip_bad_rows INTEGER NOT NULL DEFAULT 0,
    overwrite INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events(job_id, seq);
"""
# name -> SQL type and default; see the module docstring.
_ADDED_COLUMNS = {
    "metadata": "TEXT",  # the client's key-value pairs (JSON), as OpenAI stores them
    "integrations": "TEXT NOT NULL DEFAULT '[]'",
    "estimated_finish": "INTEGER",
    "pause_requested": "INTEGER NOT NULL DEFAULT 0",
    # the checkpoint a resumed job must continue from; a resume never silently starts over
    "resume_checkpoint": "TEXT",
}
# Columns stored as JSON text.
_JSON_COLUMNS = ("error", "hyperparameters", "result_files", "metadata", "integrations")


class JobError(UserError, ValueError):
    """A job request that cannot be done as asked; the message says why and what to do."""

    def __init__(self, message: str, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


class JobStateError(JobError):
    """The job is in a state that does not allow this (e.g. cancelling a finished job)."""


@contextmanager
def connect():
    conn = sqlite3.connect(str(workspace.jobs_db_path()), timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_SCHEMA)
        _add_missing_columns(conn)
        yield conn
    finally:
        conn.close()


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    have = {r["name"] for r in conn.execute("PRAGMA table_info(jobs)")}
    for name, sql_type in _ADDED_COLUMNS.items():
        if name not in have:
            try:
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {sql_type}")
            except sqlite3.OperationalError as exc:  # another process added it a moment ago
                if "duplicate column" not in str(exc):
                    raise


def new_job_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "ftjob-" + "".join(secrets.choice(alphabet) for _ in range(24))


def insert_job(job_id: str, cfg: TrainConfig, suffix: str | None, output_dir: str, hyperparameters: dict,
               skip_bad_rows: bool, overwrite: bool, metadata: dict | None = None,
               integrations: list | None = None) -> None:
    """Store a new job in `validating_files`."""
    with connect() as conn:
        conn.execute(
            "INSERT INTO jobs(id, status, model, suffix, created_at, hyperparameters, output_dir, config, skip_bad_rows, "
            "overwrite, metadata, integrations) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (job_id, "validating_files", cfg.model.base_model, suffix, int(time.time()), json.dumps(hyperparameters),
             output_dir, json.dumps(cfg.to_dict(), ensure_ascii=False), int(skip_bad_rows), int(overwrite),
             json.dumps(metadata, ensure_ascii=False) if metadata is not None else None,
             json.dumps(integrations or [], ensure_ascii=False)),
        )


def update(job_id: str, **fields) -> None:
    """Set columns of one job (JSON columns take Python values)."""
    if not fields:
        return
    cols = ", ".join(f"{k} = ?" for k in fields)
    values = [json.dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in fields.items()]
    with connect() as conn:
        conn.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values, job_id))


def finish(job_id: str, status: str, **fields) -> None:
    """Put a job in a final state, now; its worker is gone (or never started), so nothing is left to estimate."""
    fields.setdefault("estimated_finish", None)
    update(job_id, status=status, finished_at=int(time.time()), pid=None, **fields)


def add_event(job_id: str, message: str, type: str = "message", level: str = "info", data: dict | None = None) -> dict:
    now = time.time()
    with connect() as conn:
        cur = conn.execute("INSERT INTO events(job_id, created_at, level, message, type, data) VALUES (?,?,?,?,?,?)",
                           (job_id, now, level, message, type, json.dumps(data or {}, ensure_ascii=False, default=str)))
        seq = cur.lastrowid
    return {"id": f"ftevent-{seq}", "created_at": int(now), "level": level, "message": message, "type": type, "data": data or {}}


def row_to_job(row: sqlite3.Row) -> dict:
    """A stored row -> the job dict: OpenAI's fine-tuning job fields plus `output_dir`."""
    config = json.loads(row["config"])
    keys = row.keys()
    return {
        "id": row["id"],
        "object": "fine_tuning.job",
        "status": row["status"],
        "model": row["model"],
        "fine_tuned_model": row["fine_tuned_model"],
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
        "error": json.loads(row["error"]) if row["error"] else None,
        "hyperparameters": json.loads(row["hyperparameters"]),
        "trained_tokens": row["trained_tokens"],
        "result_files": json.loads(row["result_files"]),
        "training_file": config.get("dataset", {}).get("path"),
        "validation_file": config.get("dataset", {}).get("eval_path"),
        "method": _method(config.get("method", {})),
        "suffix": row["suffix"],
        "seed": config.get("training", {}).get("seed"),
        "metadata": json.loads(row["metadata"]) if "metadata" in keys and row["metadata"] else None,
        "integrations": json.loads(row["integrations"]) if "integrations" in keys and row["integrations"] else [],
        "estimated_finish": row["estimated_finish"] if "estimated_finish" in keys else None,
        "output_dir": row["output_dir"],
    }


def _method(method: dict) -> dict:
    """The job's method type; a preference stage (dpo / orpo / kto) adds its settings (ft_mapping.openai_job)."""
    out = {"type": method.get("type", "lora")}
    if method.get("stage", "sft") != "sft":
        out.update({k: method[k] for k in ("stage", "beta", "pref_loss") if k in method})
    return out


def read_row(job_id: str) -> sqlite3.Row:
    with connect() as conn:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise JobError(f"No job {job_id!r}; see `tunepilot jobs list`.")
    return row


def job_record(job_id: str) -> dict:
    """The raw stored row (for the worker): config, flags and pid included."""
    return dict(read_row(job_id))


def job_config(job_id: str) -> TrainConfig:
    return TrainConfig.model_validate(json.loads(read_row(job_id)["config"]))


def read_job(job_id: str) -> dict:
    """The job dict as stored (`queue.get_job` first notices dead workers)."""
    return row_to_job(read_row(job_id))


def matches_metadata(job: dict, metadata: dict[str, str] | None) -> bool:
    """OpenAI's metadata filter: every given key has exactly the given value. `{}` or None filters nothing."""
    if not metadata:
        return True
    have = job.get("metadata") or {}
    return all(k in have and str(have[k]) == str(v) for k, v in metadata.items())


def read_jobs(limit: int | None = None, status: str | None = None, metadata: dict[str, str] | None = None) -> list[dict]:
    """Stored jobs, newest first; `metadata` keeps only jobs carrying all of those key-value pairs."""
    query = "SELECT * FROM jobs" + (" WHERE status = ?" if status else "") + " ORDER BY created_at DESC, rowid DESC"
    params: tuple = (status,) if status else ()
    if limit and not metadata:
        query += f" LIMIT {int(limit)}"
    with connect() as conn:
        found = [row_to_job(r) for r in conn.execute(query, params).fetchall()]
    found = [j for j in found if matches_metadata(j, metadata)]
    return found[:limit] if limit else found


def running_workers() -> list[sqlite3.Row]:
    """id, pid, cancel_requested and pause_requested of every job stored as running."""
    with connect() as conn:
        return conn.execute("SELECT id, pid, cancel_requested, pause_requested FROM jobs WHERE status = 'running'").fetchall()


def metric_events(job_id: str) -> list[dict]:
    """The job's `metrics` events, oldest first (all runs of a resumed job)."""
    return [e for e in job_events(job_id) if e["type"] == "metrics"]


def queued_ids() -> list[str]:
    """Queued jobs, oldest first (the order they start in)."""
    with connect() as conn:
        return [r["id"] for r in conn.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, rowid")]


def job_events(job_id: str, after: str | None = None, limit: int | None = None) -> list[dict]:
    """Events of a job in the order they happened; `after` is an event id (only later ones are returned)."""
    read_row(job_id)
    after_seq = 0
    if after:
        try:
            after_seq = int(str(after).removeprefix("ftevent-"))
        except ValueError:
            raise JobError(f"Bad event id {after!r}; pass an id like ftevent-12 from `jobs events`.") from None
    query = "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq"
    if limit:
        query += f" LIMIT {int(limit)}"
    with connect() as conn:
        rows = conn.execute(query, (job_id, after_seq)).fetchall()
    return [{"id": f"ftevent-{r['seq']}", "created_at": int(r["created_at"]), "level": r["level"],
             "message": r["message"], "type": r["type"], "data": json.loads(r["data"])} for r in rows]
