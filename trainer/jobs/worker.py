"""The background worker for one job: `python -m trainer.jobs.worker --job-id ftjob-...`.

It runs the recipe, streams its events into the job store, finishes the run on success (registers
the fine-tuned model and merges it when the config asks: `trainer.training.finish.finish_run`), and
then starts the next queued job. SIGTERM (what `jobs cancel` sends) is handled gracefully: training
stops after the current step, a checkpoint is saved, the job is `cancelled`. A pause is asked for
in the job row (read at every step end, at most twice a second), so it works even before this
process has set up its signal handler; the job then becomes `paused`. A SIGKILL cannot be
handled; the queue notices the missing process on its next read.

While training, the worker keeps the job row current (trained tokens, estimated finish) and
registers each saved checkpoint as a model id (`trainer.training.checkpoints.sync_registry`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from trainer.jobs import queue, results, store

# How often the stop check may read the job row (it runs at every step end).
_FLAG_POLL_SECONDS = 0.5


def _fail(job_id: str, exc: Exception, output_dir: str) -> str:
    """End the job as `failed` with a one-line message (and the traceback in worker.log for our own bugs)."""
    from tunepilot.core.errors import is_user_error, one_line

    user_error = is_user_error(exc)
    message = one_line(exc)
    if not user_error:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {message} (details in {output_dir}/worker.log)"
    store.finish(job_id, "failed",
                 error={"code": "invalid_input" if user_error else "training_error", "message": message, "param": None})
    store.add_event(job_id, message, level="error")
    return "failed"


class _StopRequests:
    """`should_stop` for the recipe: SIGTERM, or a pause/cancel flag in the job row."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.signalled = threading.Event()
        self._checked = 0.0
        self._flagged = False

    def __call__(self) -> bool:
        if self.signalled.is_set() or self._flagged:
            return True
        now = time.monotonic()
        if now - self._checked >= _FLAG_POLL_SECONDS:
            self._checked = now
            row = store.read_row(self.job_id)
            self._flagged = bool(row["pause_requested"] or row["cancel_requested"])
        return self._flagged


def _sink_for(job_id: str, cfg, record: dict):
    """Events into the store; metrics also refresh the job row, checkpoints become model ids."""
    from trainer.training.checkpoints import sync_registry

    model_id = results.job_model_id(job_id)

    def sink(e: dict) -> None:
        data = e.get("data") or {}
        store.add_event(job_id, e["message"], type=e.get("type", "message"), level=e.get("level", "info"), data=data)
        if e.get("type") == "metrics" and "trained_tokens" in data:
            store.update(job_id, trained_tokens=data["trained_tokens"], estimated_finish=data.get("estimated_finish"))
        if "checkpoint" in data and e.get("type") == "message" and "step" in data:
            sync_registry(model_id, cfg.model.base_model, record["output_dir"])

    return sink


def _missing_checkpoint(record: dict) -> str | None:
    expected = record.get("resume_checkpoint")
    return expected if expected and not Path(expected).is_dir() else None


def run_job(job_id: str) -> str:
    """Train one job to a final state (or `paused`); returns that state."""
    from trainer.training.finish import fine_tuned_model_id, finish_run
    from trainer.training.recipe import train

    stop = _StopRequests(job_id)

    def on_sigterm(signum, frame):
        stop.signalled.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    record = store.job_record(job_id)
    cfg = store.job_config(job_id)
    store.add_event(job_id, "Fine-tuning job started")
    sink = _sink_for(job_id, cfg, record)

    missing = _missing_checkpoint(record)
    if missing:  # deleted between the resume and this start: never quietly train from step 0
        message = f"Cannot resume {job_id}: its checkpoint folder {missing} no longer exists."
        store.finish(job_id, "failed", error={"code": "checkpoint_missing", "message": message, "param": None})
        store.add_event(job_id, message, level="error")
        return "failed"

    # Every failure must end as a `failed` job with a message, never a silent death.
    try:
        result = train(cfg, record["output_dir"], on_event=sink, resume=True, overwrite=bool(record["overwrite"]),
                       skip_bad_rows=bool(record["skip_bad_rows"]), should_stop=stop)
    except Exception as exc:  # noqa: BLE001 (see above)
        return _fail(job_id, exc, record["output_dir"])
    csv_path = str(results.write_results_csv(job_id))

    if result.status == "cancelled" and _pause_wanted(job_id):
        store.update(job_id, trained_tokens=result.trained_tokens, result_files=[csv_path])
        queue.mark_paused(job_id, f"at step {result.global_step}")
        return "paused"
    if result.status == "cancelled":
        store.finish(job_id, "cancelled", trained_tokens=result.trained_tokens, result_files=[csv_path])
        store.add_event(job_id, f"Job cancelled at step {result.global_step}; `tunepilot jobs resume {job_id}` continues",
                        level="warning")
        return "cancelled"

    try:
        finished = finish_run(result, cfg, fine_tuned_model_id(cfg, job_id, suffix=record["suffix"]), on_event=sink)
    except Exception as exc:  # noqa: BLE001 (a merge that fails, e.g. out of memory)
        return _fail(job_id, exc, record["output_dir"])
    model_id = finished.fine_tuned_model
    files = [p for p in (csv_path, result.final_path, result.job_card_path) if p]
    store.finish(job_id, "succeeded", fine_tuned_model=model_id, trained_tokens=result.trained_tokens, result_files=files)
    store.add_event(job_id, f"New fine-tuned model created: {model_id}", data={"fine_tuned_model": model_id})
    store.add_event(job_id, "The job has successfully completed")
    return "succeeded"


def _pause_wanted(job_id: str) -> bool:
    row = store.read_row(job_id)
    return bool(row["pause_requested"]) and not row["cancel_requested"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.jobs.worker")
    parser.add_argument("--job-id", required=True)
    args = parser.parse_args(argv)
    try:
        status = run_job(args.job_id)
    finally:
        # Whatever happened to this job, the queue must move on.
        queue.dispatch_after_exit(args.job_id)
    return 0 if status in ("succeeded", "cancelled", "paused") else 1


if __name__ == "__main__":
    sys.exit(main())
