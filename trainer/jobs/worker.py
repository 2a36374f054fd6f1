"""The background worker for one job: `python -m trainer.jobs.worker --job-id ftjob-...`.

It runs the recipe, streams its events into the job store, finishes the run on success (registers
the fine-tuned model and merges it when the config asks: `trainer.training.finish.finish_run`), and
then starts the next queued job. SIGTERM (what `jobs cancel` sends) is handled gracefully: training
stops after the current step, a checkpoint is saved, the job is `cancelled`. A SIGKILL cannot be
handled; the queue notices the missing process on its next read.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback

from trainer.jobs import queue, store


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


def run_job(job_id: str) -> str:
    """Train one job to a final state; returns that state."""
    from trainer.training.finish import fine_tuned_model_id, finish_run
    from trainer.training.recipe import train

    stop = threading.Event()

    def on_sigterm(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    record = store.job_record(job_id)
    cfg = store.job_config(job_id)
    store.add_event(job_id, "Fine-tuning job started")

    def sink(e: dict) -> None:
        store.add_event(job_id, e["message"], type=e.get("type", "message"), level=e.get("level", "info"), data=e.get("data"))

    # Every failure must end as a `failed` job with a message, never a silent death.
    try:
        result = train(cfg, record["output_dir"], on_event=sink, resume=True, overwrite=bool(record["overwrite"]),
                       skip_bad_rows=bool(record["skip_bad_rows"]), should_stop=stop.is_set)
    except Exception as exc:  # noqa: BLE001 (see above)
        return _fail(job_id, exc, record["output_dir"])

    if result.status == "cancelled":
        store.finish(job_id, "cancelled", trained_tokens=result.trained_tokens)
        store.add_event(job_id, f"Job cancelled at step {result.global_step}; `tunepilot jobs resume {job_id}` continues",
                        level="warning")
        return "cancelled"

    try:
        finished = finish_run(result, cfg, fine_tuned_model_id(cfg, job_id, suffix=record["suffix"]), on_event=sink)
    except Exception as exc:  # noqa: BLE001 (a merge that fails, e.g. out of memory)
        return _fail(job_id, exc, record["output_dir"])
    model_id = finished.fine_tuned_model
    files = [p for p in (result.final_path, result.job_card_path) if p]
    store.finish(job_id, "succeeded", fine_tuned_model=model_id, trained_tokens=result.trained_tokens, result_files=files)
    store.add_event(job_id, f"New fine-tuned model created: {model_id}", data={"fine_tuned_model": model_id})
    store.add_event(job_id, "The job has successfully completed")
    return "succeeded"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.jobs.worker")
    parser.add_argument("--job-id", required=True)
    args = parser.parse_args(argv)
    try:
        status = run_job(args.job_id)
    finally:
        # Whatever happened to this job, the queue must move on.
        queue.dispatch_after_exit(args.job_id)
    return 0 if status in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
