"""Fine-tuning jobs, shaped like OpenAI's: create, get, list, cancel, pause, resume, wait.

A job runs in a detached worker process (`python -m trainer.jobs.worker --job-id ftjob-...`, the id
on its command line so operators can find and signal it). One job runs at a time by default
(`TUNEPILOT_MAX_RUNNING_JOBS`); the others wait as `queued`, and a finishing worker starts the next.
The rows and events themselves are kept by `trainer.jobs.store`.

States: validating_files -> queued -> running -> succeeded | failed | cancelled, and
running -> paused -> (resume) queued. A worker that disappears (kill -9, power loss) is noticed on
the next read and the job becomes `failed`; `resume_job` queues it again and training continues
from its latest checkpoint. Pausing asks the worker (through the job row, which it reads at every
step) to save a checkpoint and stop; the checkpoint is recorded, and a resume that cannot find it
fails naming the folder instead of quietly starting over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from trainer.jobs import store
from trainer.jobs.store import SETTLED, TERMINAL, JobError, JobStateError
from trainer.planning.output_dir import WORKER_LOG
from trainer.planning.schema import TrainConfig
from tunepilot.core import workspace
from tunepilot.core.settings import settings

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
    for row in store.running_workers():
        if worker_alive(row["pid"], row["id"]):
            continue
        # Re-read: the worker may have finished normally between the query and the check.
        if store.read_row(row["id"])["status"] != "running":
            continue
        changed += 1
        if row["pause_requested"] and not row["cancel_requested"]:
            mark_paused(row["id"], "the worker stopped while pausing")
            continue
        if row["cancel_requested"]:
            store.finish(row["id"], "cancelled")
            store.add_event(row["id"], "Job cancelled", level="warning")
            continue
        message = (f"The training process (pid {row['pid']}) exited unexpectedly; "
                   f"run `tunepilot jobs resume {row['id']}` to continue from the last checkpoint.")
        store.finish(row["id"], "failed", error={"code": "worker_exited", "message": message, "param": None})
        store.add_event(row["id"], message, level="error")
    return changed


def mark_paused(job_id: str, how: str) -> None:
    """Record a paused job and the checkpoint its resume must continue from."""
    from trainer.planning.output_dir import latest_checkpoint

    checkpoint = latest_checkpoint(store.read_row(job_id)["output_dir"])
    store.update(job_id, status="paused", pid=None, estimated_finish=None, resume_checkpoint=checkpoint)
    where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint yet (a resume starts from the beginning)"
    store.add_event(job_id, f"Job paused ({how}); {where}", level="warning",
                    data={"checkpoint": checkpoint})


def _refresh() -> None:
    """Notice dead workers; if that freed a slot, start the next queued job."""
    if _reap():
        dispatch()


# ---------------------------------------------------------------- starting workers

def _dispatch_lock() -> FileLock:
    return FileLock(str(workspace.jobs_db_path()) + ".lock")


def _max_running() -> int:
    return settings().max_running_jobs  # validated there: a bad TUNEPILOT_MAX_RUNNING_JOBS is a UserError


def dispatch() -> list[str]:
    """Start queued jobs while fewer than the allowed number run; returns the ids started."""
    started = []
    with _dispatch_lock():
        _reap()
        running = len(store.running_workers())
        for job_id in store.queued_ids()[: max(0, _max_running() - running)]:
            pid = _spawn_worker(job_id)
            store.update(job_id, status="running", pid=pid, started_at=int(time.time()), cancel_requested=0)
            started.append(job_id)
    return started


def dispatch_after_exit(job_id: str) -> None:
    """Called by a finishing worker: make sure its job is final, then start the next queued job."""
    if store.read_row(job_id)["status"] == "running":
        store.finish(job_id, "failed", error={"code": "training_error",
                                              "message": "The worker stopped without a result; see worker.log.",
                                              "param": None})
    store.update(job_id, pid=None)
    dispatch()


def _spawn_worker(job_id: str) -> int:
    out = Path(store.read_row(job_id)["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / WORKER_LOG, "ab")  # noqa: SIM115 (the child process keeps the file; we close our copy)
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


# ---------------------------------------------------------------- creating a job

def _hyperparameters(cfg: TrainConfig) -> dict:
    return {"n_epochs": cfg.training.epochs, "batch_size": cfg.training.batch_size,
            "learning_rate": cfg.optimizer.learning_rate, "max_steps": cfg.training.max_steps,
            "method": cfg.method.type}


def _validate_config(cfg: TrainConfig, overwrite: bool) -> None:
    """The launch rules (output folder in use included); any error refuses the job."""
    from trainer.planning.rules import validate

    report = validate(cfg, for_launch=True, overwrite=overwrite)
    if not report.ok:
        problems = "; ".join(f"{f.field}: {f.message}" for f in report.errors)
        raise JobError(f"The config cannot run here: {problems}")


def _validate_inputs(cfg: TrainConfig, skip_bad_rows: bool) -> dict:
    """Cheap pre-flight checks before queueing: model folder and data file. (The output folder is a
    launch rule, `output-dir-not-empty`, checked by `_validate_config`; a job without
    saving.output_dir gets a fresh folder named after it.)"""
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
    if not cfg.dataset.path:
        raise JobError("dataset.path is empty; set it to a JSON, JSONL or CSV file of training examples.",
                       code="invalid_training_file", param="dataset.path")
    from trainer.training.tracking import TrackingError, check_available

    try:
        check_available(cfg.training.report_to)
    except TrackingError as exc:
        raise JobError(str(exc), param="training.report_to") from None
    report = check_dataset(cfg.dataset.path, max_seq_length=cfg.dataset.max_seq_length,
                           eval_path=cfg.dataset.eval_path, fmt=cfg.dataset.format,
                           epochs=cfg.training.epochs, batch_size=cfg.training.batch_size,
                           gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
                           max_steps=cfg.training.max_steps, stage=cfg.method.stage,
                           dataset_dir=cfg.dataset.dataset_dir)
    if report.fatal or (report.errors and not skip_bad_rows):
        hint = "" if report.fatal else "; fix them or pass --skip-bad-rows."
        raise JobError(report.summary() + hint, code="invalid_training_file", param="dataset.path")
    return report.to_dict()


def create_job(cfg: TrainConfig, suffix: str | None = None, skip_bad_rows: bool = False, overwrite: bool = False,
               metadata: dict[str, str] | None = None, integrations: list[dict] | None = None) -> dict:
    """Validate the config and its data, store the job, and start it (or queue it behind a running one).

    Config rule errors raise JobError without creating a job; data problems leave a `failed` job
    whose `error` lists them (as OpenAI does for invalid training files) and raise JobError.
    `metadata` (OpenAI's: up to 16 string pairs) and `integrations` are stored and shown with the job.
    """
    _check_metadata(metadata)
    _validate_config(cfg, overwrite)
    job_id = store.new_job_id()
    suffix = suffix if suffix is not None else cfg.saving.suffix
    output_dir = Path(cfg.saving.output_dir).expanduser().resolve() if cfg.saving.output_dir else workspace.runs_dir() / job_id
    store.insert_job(job_id, cfg, suffix, str(output_dir), _hyperparameters(cfg), skip_bad_rows, overwrite,
                     metadata=metadata, integrations=integrations)
    store.add_event(job_id, f"Validating training file: {cfg.dataset.path}")
    try:
        report = _validate_inputs(cfg, skip_bad_rows)
    except JobError as exc:
        store.update(job_id, status="failed", finished_at=int(time.time()),
                     error={"code": exc.code, "message": str(exc), "param": exc.param})
        store.add_event(job_id, str(exc), level="error")
        raise JobError(f"{job_id} failed validation: {exc}", code=exc.code, param=exc.param) from None
    store.add_event(job_id, f"Files validated: {report['n_examples']} examples, {report['tokens']['total']:,} tokens"
                            + (f"; {len(report['errors'])} bad row(s) will be skipped" if report["errors"] else ""),
                    data={"data_check": {k: report[k] for k in ("n_examples", "tokens", "estimated_steps") if k in report}})
    store.update(job_id, status="queued")
    store.add_event(job_id, "Job queued")
    dispatch()
    return get_job(job_id)


def _check_metadata(metadata: dict | None) -> None:
    """OpenAI's limits: at most 16 pairs, keys up to 64 characters, string values up to 512."""
    if metadata is None:
        return
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise JobError("metadata must be an object of at most 16 key-value pairs.", param="metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise JobError(f"metadata key {key!r} must be a string of 1-64 characters.", param="metadata")
        if not isinstance(value, str) or len(value) > 512:
            raise JobError(f"metadata[{key!r}] must be a string of at most 512 characters.", param="metadata")


# ---------------------------------------------------------------- reading, cancelling, pausing, resuming

def get_job(job_id: str) -> dict:
    """The job, after noticing workers that died (so a killed job reads `failed`, not `running`)."""
    _refresh()
    return store.read_job(job_id)


def list_jobs(limit: int | None = None, status: str | None = None, metadata: dict[str, str] | None = None) -> list[dict]:
    """Jobs, newest first, after noticing workers that died; `metadata` keeps jobs carrying all those pairs."""
    _refresh()
    return store.read_jobs(limit=limit, status=status, metadata=metadata)


def cancel_job(job_id: str, wait: float = 0.0) -> dict:
    """Stop a job: a queued job is cancelled at once; a running worker gets SIGTERM, saves a checkpoint and stops.

    With `wait` > 0, waits up to that many seconds for the worker to finish stopping.
    """
    _reap()
    row = store.read_row(job_id)
    status = row["status"]
    if status in TERMINAL:
        raise JobStateError(f"Job {job_id} is already {status}; only queued, running or paused jobs can be cancelled.")
    if status in ("validating_files", "queued", "paused"):
        store.finish(job_id, "cancelled")
        store.add_event(job_id, "Job cancelled", level="warning")
        return get_job(job_id)
    store.update(job_id, cancel_requested=1)
    store.add_event(job_id, "Cancellation requested; the worker saves a checkpoint and stops after the current step")
    try:
        os.kill(int(row["pid"]), signal.SIGTERM)
    except (ProcessLookupError, TypeError):
        pass  # already gone: the next read marks it cancelled
    deadline = time.time() + wait
    while time.time() < deadline and get_job(job_id)["status"] == "running":
        time.sleep(0.5)
    return get_job(job_id)


class CheckpointMissing(JobStateError):
    """The checkpoint a paused job must continue from is gone; the job is marked failed."""


def pause_job(job_id: str, wait: float = 0.0) -> dict:
    """Pause a job: a queued one at once; a running worker saves a checkpoint at the end of its current
    step and stops, and the job becomes `paused` until `resume_job`. With `wait` > 0, waits that long
    for the worker to stop."""
    _reap()
    row = store.read_row(job_id)
    status = row["status"]
    if status in ("validating_files", "queued"):
        store.update(job_id, status="paused", resume_checkpoint=None)
        store.add_event(job_id, "Job paused before it started", level="warning")
        return get_job(job_id)
    if status != "running":
        raise JobStateError(f"Job {job_id} is {status}; only queued or running jobs can be paused.")
    if not row["pause_requested"]:
        store.update(job_id, pause_requested=1)
        store.add_event(job_id, "Pause requested; the worker saves a checkpoint and stops after the current step")
    deadline = time.time() + wait
    while time.time() < deadline and get_job(job_id)["status"] == "running":
        time.sleep(0.5)
    return get_job(job_id)


def resume_job(job_id: str) -> dict:
    """Queue a paused, failed or cancelled job again; its worker continues from the latest checkpoint.

    A paused job continues from the checkpoint its pause saved; if that folder is gone, the job
    becomes `failed` and CheckpointMissing names the folder (starting over would silently throw
    away the steps already trained).
    """
    from trainer.planning.output_dir import latest_checkpoint

    _reap()
    row = store.read_row(job_id)
    if row["status"] not in ("paused", "failed", "cancelled"):
        raise JobStateError(f"Job {job_id} is {row['status']}; only paused, failed or cancelled jobs can be resumed.")
    if row["started_at"] is None and row["status"] != "paused":
        raise JobStateError(f"Job {job_id} never started (it failed validation); fix the input and create a new job.")
    error = json.loads(row["error"]) if row["error"] else {}
    if error.get("code") == "checkpoint_missing":
        raise JobStateError(f"Job {job_id} lost the checkpoint it had to continue from ({error.get('message')}); "
                            "create a new job to train from the start.")
    expected = row["resume_checkpoint"] if row["status"] == "paused" else None
    if expected and not Path(expected).is_dir():
        message = (f"Cannot resume {job_id}: its checkpoint folder {expected} no longer exists; "
                   "create a new job to train from the start.")
        store.finish(job_id, "failed", error={"code": "checkpoint_missing", "message": message, "param": None})
        store.add_event(job_id, message, level="error")
        raise CheckpointMissing(message, code="checkpoint_missing")
    checkpoint = expected or latest_checkpoint(row["output_dir"])
    # Never wipe the folder on resume: it holds the checkpoints we continue from.
    store.update(job_id, status="queued", error=None, finished_at=None, pid=None, cancel_requested=0, overwrite=0,
                 pause_requested=0, resume_checkpoint=checkpoint)
    store.add_event(job_id, f"Job resumed; continuing from {Path(checkpoint).name}" if checkpoint
                    else "Job resumed; no checkpoint was saved yet, so training starts from the beginning")
    dispatch()
    return get_job(job_id)


def wait_for_job(job_id: str, timeout: float = 600.0, poll: float = 0.5) -> dict:
    """Block until the job reaches a final state or `paused` (or the timeout); returns the job."""
    deadline = time.time() + timeout
    job = get_job(job_id)
    while job["status"] not in SETTLED and time.time() < deadline:
        time.sleep(poll)
        job = get_job(job_id)
    return job
