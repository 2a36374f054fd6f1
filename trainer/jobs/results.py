"""What a job leaves to look at: its checkpoints (as OpenAI's checkpoint objects) and a CSV of step metrics.

Checkpoints are read from the job's run folder (`trainer.training.checkpoints`), so the list is
what is on disk now: the Trainer keeps `saving.save_total_limit` of them. Each one's model id is
`<the job's fine-tuned model id>:ckpt-step-N`, registered by the worker as the checkpoint is saved.

The CSV (`results.csv` in the run folder) has OpenAI's result-file columns first (`step,
train_loss, train_accuracy, valid_loss, valid_mean_token_accuracy`) and tunepilot's after them;
it is rewritten from the job's metrics events whenever its worker stops, so a paused and resumed
job has one file covering all its steps.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from trainer.jobs import store
from tunepilot.core import atomic

RESULTS_CSV = "results.csv"
CSV_COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy",
               "learning_rate", "tokens_per_second", "trained_tokens", "epoch"]


def job_model_id(job_id: str) -> str:
    """The `ft:` id the job's final model gets (and its checkpoints extend)."""
    from trainer.training.finish import fine_tuned_model_id

    row = store.read_row(job_id)
    return row["fine_tuned_model"] or fine_tuned_model_id(store.job_config(job_id), job_id, suffix=row["suffix"])


def checkpoint_object_id(job_id: str, step: int) -> str:
    """A stable id per job and step (list cursors and clients may keep it)."""
    return f"ftckpt-{job_id.removeprefix('ftjob-')}-{step}"


def job_checkpoints(job_id: str) -> list[dict]:
    """The job's kept checkpoints as OpenAI `fine_tuning.job.checkpoint` objects, newest first."""
    from trainer.training.checkpoints import checkpoint_model_id, list_checkpoints

    row = store.read_row(job_id)
    model_id = job_model_id(job_id)
    return [{
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint_object_id(job_id, ckpt.step),
        "created_at": ckpt.created_at,
        "fine_tuned_model_checkpoint": checkpoint_model_id(model_id, ckpt.step),
        "fine_tuning_job_id": job_id,
        "step_number": ckpt.step,
        "metrics": ckpt.metrics,
    } for ckpt in list_checkpoints(row["output_dir"])]


def step_rows(job_id: str) -> list[dict]:
    """One row per step from the job's metrics events; a resumed job's repeated steps keep the latest."""
    rows: dict[int, dict] = {}
    for e in store.metric_events(job_id):
        data = e.get("data") or {}
        if "step" not in data:
            continue
        row = rows.setdefault(int(data["step"]), {"step": int(data["step"])})
        if "train_loss" in data or "loss" in data:
            row.update(train_loss=data.get("train_loss", data.get("loss")),
                       train_accuracy=data.get("train_mean_token_accuracy"),
                       learning_rate=data.get("learning_rate"), tokens_per_second=data.get("tokens_per_second"),
                       trained_tokens=data.get("trained_tokens"), epoch=data.get("epoch"))
        elif data.get("valid_loss") is not None:
            row.update(valid_loss=data["valid_loss"], valid_mean_token_accuracy=data.get("valid_mean_token_accuracy"))
    return [rows[step] for step in sorted(rows)]


def write_results_csv(job_id: str) -> Path:
    """Write the job's step metrics to `results.csv` in its run folder; returns the path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in step_rows(job_id):
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_COLUMNS})
    path = Path(store.read_row(job_id)["output_dir"]) / RESULTS_CSV
    atomic.write_text(path, buffer.getvalue())
    return path
