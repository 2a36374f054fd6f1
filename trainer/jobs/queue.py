"""Fine-tuning jobs, shaped like OpenAI's: create, list, get, cancel, resume, events.

State lives in one SQLite file (`tunepilot.core.workspace.jobs_db_path()`) in WAL mode, so the CLI, the
Streamlit UI and the API server can read and write it at the same time. A job runs in a detached
worker process (`python -m trainer.jobs.worker --job-id ftjob-...`, the id on its command line so
operators can find and signal it). One job runs at a time by default
(`TUNEPILOT_MAX_RUNNING_JOBS`); the others wait as `queued`, and a finishing worker starts the next.

States: validating_files -> queued -> running -> succeeded | failed | cancelled. A worker that
disappears (kill -9, power loss) is noticed on the next read and the job becomes `failed`;
`resume_job` queues it again and training continues from its latest checkpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import string
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from trainer.planning.schema import TrainConfig
from tunepilot.core import workspace
from tunepilot.core.errors import UserError

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("validating_files", "queued", "running")

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


class JobError(UserError, ValueError):
    """A job request that cannot be done as asked; the message says why and what to do."""

    def __init__(self, message: str, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


class JobStateError(JobError):
    """The job is in a state that does not allow this (e.g. cancelling a finished job)."""


# ---------------------------------------------------------------- storage

@contextmanager
def _db():
    conn = sqlite3.connect(str(workspace.jobs_db_path()), timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_SCHEMA)
        yield conn
    finally:
        conn.close()


def _dispatch_lock() -> FileLock:
    return FileLock(str(workspace.jobs_db_path()) + ".lock")


def _new_job_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "ftjob-" + "".join(secrets.choice(alphabet) for _ in range(24))


def _update(job_id: str, **fields) -> None:
    if not fields:
        return
    cols = ", ".join(f"{k} = ?" for k in fields)
    values = [json.dumps(v) if k in ("error", "hyperparameters", "result_files") and v is not None else v
              for k, v in fields.items()]
    with _db() as conn:
        conn.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values, job_id))


def add_event(job_id: str, message: str, type: str = "message", level: str = "info", data: dict | None = None) -> dict:
    now = time.time()
    with _db() as conn:
        cur = conn.execute("INSERT INTO events(job_id, created_at, level, message, type, data) VALUES (?,?,?,?,?,?)",
                           (job_id, now, level, message, type, json.dumps(data or {}, ensure_ascii=False, default=str)))
        seq = cur.lastrowid
    return {"id": f"ftevent-{seq}", "created_at": int(now), "level": level, "message": message, "type": type, "data": data or {}}


def _row_to_job(row: sqlite3.Row) -> dict:
    config = json.loads(row["config"])
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
        "method": {"type": config.get("method", {}).get("type", "lora")},
        "suffix": row["suffix"],
        "output_dir": row["output_dir"],
    }


def _read_row(job_id: str) -> sqlite3.Row:
    with _db() as conn:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise JobError(f"No job {job_id!r}; see `tunepilot jobs list`.")
    return row


def job_config(job_id: str) -> TrainConfig:
    return TrainConfig.model_validate(json.loads(_read_row(job_id)["config"]))


def job_record(job_id: str) -> dict:
    """The raw stored row (for the worker): config, flags and pid included."""
    return dict(_read_row(job_id))


# ---------------------------------------------------------------- worker liveness

def worker_alive(pid: int | None, job_id: str) -> bool:
    """True while the job's worker process exists (a zombie or a reused pid does not count)."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return job_id in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _reap() -> int:
    """Mark running jobs whose worker vanished as failed (or cancelled, if a cancel was requested); returns how many."""
    changed = 0
    with _db() as conn:
        rows = conn.execute("SELECT id, pid, cancel_requested FROM jobs WHERE status = 'running'").fetchall()
    for row in rows:
        if worker_alive(row["pid"], row["id"]):
            continue
        # Re-read: the worker may have finished normally between the query and the check.
        if _read_row(row["id"])["status"] != "running":
            continue
        changed += 1
        if row["cancel_requested"]:
            _update(row["id"], status="cancelled", finished_at=int(time.time()), pid=None)
            add_event(row["id"], "Job cancelled", level="warning")
            continue
        message = (f"The training process (pid {row['pid']}) exited unexpectedly; "
                   f"run `tunepilot jobs resume {row['id']}` to continue from the last checkpoint.")
        _update(row["id"], status="failed", finished_at=int(time.time()), pid=None,
                error={"code": "worker_exited", "message": message, "param": None})
        add_event(row["id"], message, level="error")
    return changed


def _refresh() -> None:
    """Notice dead workers; if that freed a slot, start the next queued job."""
    if _reap():
        dispatch()


def dispatch_after_exit(job_id: str) -> None:
    """Called by a finishing worker: make sure its job is final, then start the next queued job."""
    if _read_row(job_id)["status"] == "running":
        _update(job_id, status="failed", finished_at=int(time.time()), pid=None,
                error={"code": "training_error", "message": "The worker stopped without a result; see worker.log.", "param": None})
    _update(job_id, pid=None)
    dispatch()


def _max_running() -> int:
    try:
        return max(1, int(os.environ.get("TUNEPILOT_MAX_RUNNING_JOBS", "1")))
    except ValueError:
        return 1


def dispatch() -> list[str]:
    """Start queued jobs while fewer than the allowed number run; returns the ids started."""
    started = []
    with _dispatch_lock():
        _reap()
        with _db() as conn:
            running = conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0]
            queued = [r["id"] for r in conn.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, rowid")]
        for job_id in queued[: max(0, _max_running() - running)]:
            pid = _spawn_worker(job_id)
            _update(job_id, status="running", pid=pid, started_at=int(time.time()), cancel_requested=0)
            started.append(job_id)
    return started


def _spawn_worker(job_id: str) -> int:
    row = _read_row(job_id)
    out = Path(row["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "worker.log", "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainer.jobs.worker", "--job-id", job_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI that started it, and Ctrl-C in that terminal
            env={**os.environ, "TUNEPILOT_HOME": str(workspace.home())},
        )
    finally:
        log.close()
    return proc.pid


# ---------------------------------------------------------------- public API

def _hyperparameters(cfg: TrainConfig) -> dict:
    return {"n_epochs": cfg.training.epochs, "batch_size": cfg.training.batch_size,
            "learning_rate": cfg.optimizer.learning_rate, "max_steps": cfg.training.max_steps,
            "method": cfg.method.type}


def _validate_config(cfg: TrainConfig) -> None:
    """The config engineer's launch rules, when present; any error refuses the job."""
    try:
        from trainer.planning.rules import validate
    except ImportError:
        return
    report = validate(cfg, for_launch=True)
    if not report.ok:
        problems = "; ".join(f"{f.field}: {f.message}" for f in report.errors)
        raise JobError(f"The config cannot run here: {problems}")


def _validate_inputs(cfg: TrainConfig, output_dir: Path, overwrite: bool, skip_bad_rows: bool) -> dict:
    """Cheap pre-flight checks before queueing: model folder, output folder, data file."""
    from trainer.data.check import check_dataset
    from trainer.models import registry as models

    name = cfg.model.base_model
    if name != models.DEFAULT_MODEL:
        if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
            raise JobError(f"model.base_model {name!r} does not exist; point it at a transformers model folder "
                           f"or use {models.DEFAULT_MODEL!r}.", param="model.base_model")
        try:
            resolved = models.resolve(name, provision=False)
        except models.ModelError as exc:
            raise JobError(str(exc), param="model.base_model") from None
        if resolved.adapter_path is not None:
            raise JobError(f"model.base_model {name!r} is an adapter; train on its base model or merge it first.",
                           param="model.base_model")
    if output_dir.exists() and any(p.name not in (".staging", "worker.log") for p in output_dir.iterdir()) and not overwrite:
        raise JobError(f"Output folder {output_dir} is not empty; choose another saving.output_dir or pass --overwrite.",
                       param="saving.output_dir")
    if not cfg.dataset.path:
        raise JobError("dataset.path is empty; set it to a JSON, JSONL or CSV file of training examples.",
                       code="invalid_training_file", param="dataset.path")
    report = check_dataset(cfg.dataset.path, max_seq_length=cfg.dataset.max_seq_length,
                           eval_path=cfg.dataset.eval_path, fmt=cfg.dataset.format,
                           epochs=cfg.training.epochs, batch_size=cfg.training.batch_size,
                           gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
                           max_steps=cfg.training.max_steps)
    if report.fatal or (report.errors and not skip_bad_rows):
        hint = "" if report.fatal else "; fix them or pass --skip-bad-rows."
        raise JobError(report.summary() + hint, code="invalid_training_file", param="dataset.path")
    return report.to_dict()


def create_job(cfg: TrainConfig, suffix: str | None = None, skip_bad_rows: bool = False, overwrite: bool = False) -> dict:
    """Validate the config and its data, store the job, and start it (or queue it behind a running one).

    Config rule errors raise JobError without creating a job; data problems leave a `failed` job
    whose `error` lists them (as OpenAI does for invalid training files) and raise JobError.
    """
    _validate_config(cfg)
    job_id = _new_job_id()
    suffix = suffix if suffix is not None else cfg.saving.suffix
    output_dir = Path(cfg.saving.output_dir).expanduser().resolve() if cfg.saving.output_dir else workspace.runs_dir() / job_id
    now = int(time.time())
    with _db() as conn:
        conn.execute(
            "INSERT INTO jobs(id, status, model, suffix, created_at, hyperparameters, output_dir, config, skip_bad_rows, overwrite) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            (job_id, "validating_files", cfg.model.base_model, suffix, now, json.dumps(_hyperparameters(cfg)),
             str(output_dir), json.dumps(cfg.to_dict(), ensure_ascii=False), int(skip_bad_rows), int(overwrite)),
        )
    add_event(job_id, f"Validating training file: {cfg.dataset.path}")
    try:
        report = _validate_inputs(cfg, output_dir, overwrite, skip_bad_rows)
    except JobError as exc:
        _update(job_id, status="failed", finished_at=int(time.time()),
                error={"code": exc.code, "message": str(exc), "param": exc.param})
        add_event(job_id, str(exc), level="error")
        raise JobError(f"{job_id} failed validation: {exc}", code=exc.code, param=exc.param) from None
    add_event(job_id, f"Files validated: {report['n_examples']} examples, {report['tokens']['total']:,} tokens"
                      + (f"; {len(report['errors'])} bad row(s) will be skipped" if report["errors"] else ""),
              data={"data_check": {k: report[k] for k in ("n_examples", "tokens", "estimated_steps") if k in report}})
    _update(job_id, status="queued")
    add_event(job_id, "Job queued")
    dispatch()
    return get_job(job_id)


def get_job(job_id: str) -> dict:
    _refresh()
    return _row_to_job(_read_row(job_id))


def list_jobs(limit: int | None = None, status: str | None = None) -> list[dict]:
    """Jobs, newest first."""
    _refresh()
    query = "SELECT * FROM jobs" + (" WHERE status = ?" if status else "") + " ORDER BY created_at DESC, rowid DESC"
    params: tuple = (status,) if status else ()
    if limit:
        query += f" LIMIT {int(limit)}"
    with _db() as conn:
        return [_row_to_job(r) for r in conn.execute(query, params).fetchall()]


def cancel_job(job_id: str, wait: float = 0.0) -> dict:
    """Stop a job: a queued job is cancelled at once; a running worker gets SIGTERM, saves a checkpoint and stops.

    With `wait` > 0, waits up to that many seconds for the worker to finish stopping.
    """
    _reap()
    row = _read_row(job_id)
    status = row["status"]
    if status in TERMINAL:
        raise JobStateError(f"Job {job_id} is already {status}; only queued or running jobs can be cancelled.")
    if status in ("validating_files", "queued"):
        _update(job_id, status="cancelled", finished_at=int(time.time()))
        add_event(job_id, "Job cancelled", level="warning")
        return get_job(job_id)
    _update(job_id, cancel_requested=1)
    add_event(job_id, "Cancellation requested; the worker saves a checkpoint and stops after the current step")
    try:
        os.kill(int(row["pid"]), signal.SIGTERM)
    except (ProcessLookupError, TypeError):
        pass  # already gone: the next read marks it cancelled
    deadline = time.time() + wait
    while time.time() < deadline and get_job(job_id)["status"] == "running":
        time.sleep(0.5)
    return get_job(job_id)


def resume_job(job_id: str) -> dict:
    """Queue a failed or cancelled job again; its worker continues from the latest checkpoint."""
    from trainer.training.loop import latest_checkpoint

    _reap()
    row = _read_row(job_id)
    if row["status"] not in ("failed", "cancelled"):
        raise JobStateError(f"Job {job_id} is {row['status']}; only failed or cancelled jobs can be resumed.")
    if row["started_at"] is None:
        raise JobStateError(f"Job {job_id} never started (it failed validation); fix the input and create a new job.")
    checkpoint = latest_checkpoint(row["output_dir"])
    # Never wipe the folder on resume: it holds the checkpoints we continue from.
    _update(job_id, status="queued", error=None, finished_at=None, pid=None, cancel_requested=0, overwrite=0)
    add_event(job_id, f"Job resumed; continuing from {Path(checkpoint).name}" if checkpoint
              else "Job resumed; no checkpoint was saved yet, so training starts from the beginning")
    dispatch()
    return get_job(job_id)


def job_events(job_id: str, after: str | None = None, limit: int | None = None) -> list[dict]:
    """Events of a job in the order they happened; `after` is an event id (only later ones are returned)."""
    _read_row(job_id)
    after_seq = 0
    if after:
        try:
            after_seq = int(str(after).removeprefix("ftevent-"))
        except ValueError:
            raise JobError(f"Bad event id {after!r}; pass an id like ftevent-12 from `jobs events`.") from None
    query = "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq"
    if limit:
        query += f" LIMIT {int(limit)}"
    with _db() as conn:
        rows = conn.execute(query, (job_id, after_seq)).fetchall()
    return [{"id": f"ftevent-{r['seq']}", "created_at": int(r["created_at"]), "level": r["level"],
             "message": r["message"], "type": r["type"], "data": json.loads(r["data"])} for r in rows]


def wait_for_job(job_id: str, timeout: float = 600.0, poll: float = 0.5) -> dict:
    """Block until the job reaches a final state (or the timeout); returns the job."""
    deadline = time.time() + timeout
    job = get_job(job_id)
    while job["status"] not in TERMINAL and time.time() < deadline:
        time.sleep(poll)
        job = get_job(job_id)
    return job
