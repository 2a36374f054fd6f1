"""The background worker for one job: `python -m trainer.jobs.worker --job-id ftjob-...`.

It runs the recipe, streams its events into the job store, registers the fine-tuned model on
success, and then starts the next queued job. SIGTERM (what `jobs cancel` sends) is handled
gracefully: training stops after the current step, a checkpoint is saved, the job is `cancelled`.
A SIGKILL cannot be handled; the job store notices the missing process on its next read.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import traceback


def run_job(job_id: str) -> str:
    """Train one job to a final state; returns that state."""
    from trainer.jobs import queue as jobs
    from trainer.training.recipe import fine_tuned_model_id, register_result, train
    from tunepilot.core.errors import is_user_error, one_line

    stop = threading.Event()

    def on_sigterm(signum, frame):  # noqa: ARG001 (signal handler signature)
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    record = jobs.job_record(job_id)
    cfg = jobs.job_config(job_id)
    jobs.add_event(job_id, "Fine-tuning job started")

    def sink(e: dict) -> None:
        jobs.add_event(job_id, e["message"], type=e.get("type", "message"), level=e.get("level", "info"), data=e.get("data"))

    try:
        result = train(cfg, record["output_dir"], on_event=sink, resume=True, overwrite=bool(record["overwrite"]),
                       skip_bad_rows=bool(record["skip_bad_rows"]), should_stop=stop.is_set)
    except Exception as exc:  # every failure must end as a `failed` job with a message, never a silent death
        user_error = is_user_error(exc)
        message = one_line(exc)
        if not user_error:
            traceback.print_exc()
            message = f"{type(exc).__name__}: {message} (details in {record['output_dir']}/worker.log)"
        jobs._update(job_id, status="failed", finished_at=int(time.time()), pid=None,
                     error={"code": "invalid_input" if user_error else "training_error", "message": message, "param": None})
        jobs.add_event(job_id, message, level="error")
        return "failed"

    if result.status == "cancelled":
        jobs._update(job_id, status="cancelled", finished_at=int(time.time()), pid=None, trained_tokens=result.trained_tokens)
        jobs.add_event(job_id, f"Job cancelled at step {result.global_step}; `tunepilot jobs resume {job_id}` continues",
                       level="warning")
        return "cancelled"

    model_id = fine_tuned_model_id(cfg, job_id, suffix=record["suffix"])
    register_result(result, cfg, model_id)
    files = [p for p in (result.final_path, result.job_card_path) if p]
    jobs._update(job_id, status="succeeded", finished_at=int(time.time()), pid=None, fine_tuned_model=model_id,
                 trained_tokens=result.trained_tokens, result_files=files)
    jobs.add_event(job_id, f"New fine-tuned model created: {model_id}", data={"fine_tuned_model": model_id})
    if cfg.saving.merge_after_training and result.is_adapter:
        from trainer.training.merge import merge

        merged = merge(result.output_dir)
        jobs.add_event(job_id, f"Merged model written to {merged['output_dir']} (max logit difference "
                               f"{merged['max_logit_diff']:.2e})", data=merged)
    jobs.add_event(job_id, "The job has successfully completed")
    return "succeeded"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.jobs.worker")
    parser.add_argument("--job-id", required=True)
    args = parser.parse_args(argv)
    from trainer.jobs import queue as jobs

    try:
        status = run_job(args.job_id)
    finally:
        # Whatever happened to this job, the queue must move on.
        jobs.dispatch_after_exit(args.job_id)
    return 0 if status in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
