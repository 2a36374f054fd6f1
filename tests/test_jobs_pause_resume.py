"""Pause and resume through the real worker process, checkpoints as models, and the job's result file.

The pause is asked for right after the job is created, so the worker (which reads the request at
every step end) always stops at the end of step 1: no race with the job finishing first.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from typer.testing import CliRunner

from tests import support
from trainer import jobs
from trainer.models import registry as models
from trainer.training.recipe import train
from tunepilot.cli.main import app

pytestmark = pytest.mark.integration

STEPS = 5
TIMEOUT = 400


def make_cfg(tmp_path, model_dir, **overrides):
    settings = {"training__max_steps": STEPS, "training__batch_size": 2, "training__device": "cpu",
                "optimizer__learning_rate": 2e-2, "saving__save_every_n_steps": 100, "saving__save_total_limit": 3,
                **overrides}
    return support.make_cfg(tmp_path, model_dir, **settings)


def train_losses(job_id: str) -> dict[int, float]:
    """step -> training loss from the job's metrics events (a resumed job's steps follow its first ones)."""
    return {e["data"]["step"]: e["data"]["train_loss"] for e in jobs.job_events(job_id)
            if e["type"] == "metrics" and "train_loss" in e["data"]}


def test_paused_and_resumed_job_logs_the_losses_of_an_uninterrupted_run(tmp_path, tiny_model_dir):
    straight = train(make_cfg(tmp_path, tiny_model_dir), tmp_path / "straight")

    job = jobs.create_job(make_cfg(tmp_path, tiny_model_dir), suffix="pz")
    jobs.pause_job(job["id"])
    paused = jobs.wait_for_job(job["id"], timeout=TIMEOUT)
    assert paused["status"] == "paused", paused
    assert train_losses(job["id"]) == {1: pytest.approx(straight.losses[0]["loss"], abs=2e-4)}

    # the pause saved a checkpoint; it is listed in OpenAI's shape and is a usable model id
    (ckpt,) = jobs.job_checkpoints(job["id"])
    assert ckpt["object"] == "fine_tuning.job.checkpoint" and ckpt["step_number"] == 1
    assert ckpt["fine_tuning_job_id"] == job["id"] and ckpt["id"].startswith("ftckpt-")
    assert ckpt["fine_tuned_model_checkpoint"].endswith(":pz:" + job["id"] + ":ckpt-step-1")
    assert ckpt["metrics"]["train_loss"] == pytest.approx(straight.losses[0]["loss"], abs=2e-4)
    assert 0.0 <= ckpt["metrics"]["train_mean_token_accuracy"] <= 1.0
    resolved = models.resolve(ckpt["fine_tuned_model_checkpoint"])
    assert resolved.adapter_path.name == "checkpoint-1"

    with pytest.raises(jobs.JobStateError):
        jobs.pause_job(job["id"])  # already paused
    resumed = jobs.resume_job(job["id"])
    assert resumed["status"] in ("queued", "running")
    done = jobs.wait_for_job(job["id"], timeout=TIMEOUT)
    assert done["status"] == "succeeded", done
    assert sorted(train_losses(job["id"])) == list(range(1, STEPS + 1))
    assert [train_losses(job["id"])[s] for s in range(1, STEPS + 1)] == pytest.approx(
        [e["loss"] for e in straight.losses], abs=2e-4)
    # the tokens of both runs of the job are counted (the total lives in the checkpoints)
    assert done["trained_tokens"] == straight.trained_tokens

    # the result file has one row per step, with OpenAI's columns first
    with open(done["result_files"][0], encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert list(rows[0])[:5] == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]

    # finished: pausing is a state error; the final checkpoint (step 5) is a model too
    with pytest.raises(jobs.JobStateError):
        jobs.pause_job(job["id"])
    steps = [c["step_number"] for c in jobs.job_checkpoints(job["id"])]
    assert steps == [5, 1]
    from trainer.models.generation import chat

    ckpt_id = f"{done['fine_tuned_model']}:ckpt-step-1"
    assert isinstance(chat(ckpt_id, "Hi", max_new_tokens=4), str)
    from trainer.training.merge import merge

    merged = merge(ckpt_id)
    assert merged["output_dir"].endswith("merged-checkpoint-1") and merged["max_logit_diff"] < 1e-3


def test_resume_of_a_job_whose_checkpoint_folder_was_deleted_fails_naming_it(tmp_path, tiny_model_dir):
    job = jobs.create_job(make_cfg(tmp_path, tiny_model_dir))
    jobs.pause_job(job["id"])
    assert jobs.wait_for_job(job["id"], timeout=TIMEOUT)["status"] == "paused"
    folder = jobs.get_job(job["id"])["output_dir"] + "/checkpoint-1"
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "checkpoints", job["id"], "--json"])
    assert listed.exit_code == 0, listed.output
    assert [c["step_number"] for c in json.loads(listed.stdout)["data"]] == [1]
    shutil.rmtree(folder)

    refused = runner.invoke(app, ["jobs", "resume", job["id"]])
    assert refused.exit_code == 2 and folder in refused.output
    with pytest.raises(jobs.JobStateError):
        jobs.resume_job(job["id"])  # now failed, and it never started over from step 0
    failed = jobs.get_job(job["id"])
    assert failed["status"] == "failed" and folder in failed["error"]["message"]
    assert failed["error"]["code"] == "checkpoint_missing"


def test_a_queued_job_pauses_at_once_and_a_paused_job_can_be_cancelled(tmp_path, tiny_model_dir):
    first = jobs.create_job(make_cfg(tmp_path, tiny_model_dir, training__max_steps=200))
    second = jobs.create_job(make_cfg(tmp_path, tiny_model_dir))
    assert second["status"] == "queued"
    assert jobs.pause_job(second["id"])["status"] == "paused"
    assert jobs.cancel_job(second["id"])["status"] == "cancelled"
    assert jobs.cancel_job(first["id"], wait=TIMEOUT)["status"] == "cancelled"
