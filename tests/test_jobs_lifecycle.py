"""Jobs through the real background worker process: succeed, queue, cancel, kill -9, resume, CLI JSON."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from tests import support
from trainer import jobs
from trainer.planning.schema import TrainConfig

pytestmark = pytest.mark.integration

ROWS = support.chat_rows(8)
TIMEOUT = 400
KILL_TEST_STEPS = 60


def make_cfg(tmp_path, model_dir, rows=ROWS, **training) -> TrainConfig:
    """The shared tiny-model config with this module's shorter rows, checkpoints every 2 steps and
    one data file per row list (a queued job may still read the first file when the second is written)."""
    return support.make_cfg(tmp_path, model_dir, rows, data_name=f"train-{len(rows)}.jsonl", dataset__max_seq_length=48,
                            optimizer__learning_rate=1e-3, saving__save_every_n_steps=2,
                            **{f"training__{key}": value for key, value in training.items()})


def wait_until(predicate, timeout=TIMEOUT, poll=0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("timed out waiting")


def worker_pids(job_id: str) -> list[int]:
    """Find the worker the way an operator would: by the job id on its command line."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "trainer.jobs.worker" in cmd and job_id in cmd:
            found.append(proc.info["pid"])
    return found


def test_jobs_succeed_in_order_and_models_are_usable(tmp_path, tiny_model_dir):
    first = jobs.create_job(make_cfg(tmp_path, tiny_model_dir), suffix="one")
    second = jobs.create_job(make_cfg(tmp_path, tiny_model_dir), suffix="two")
    assert first["id"].startswith("ftjob-") and first["object"] == "fine_tuning.job"
    assert first["status"] == "running" and second["status"] == "queued"  # one job at a time
    done = jobs.wait_for_job(second["id"], timeout=TIMEOUT)
    assert done["status"] == "succeeded", done
    first = jobs.get_job(first["id"])
    assert first["status"] == "succeeded" and first["finished_at"] <= done["finished_at"]
    assert first["fine_tuned_model"] == f"ft:{tiny_model_dir.name}:one:{first['id']}"
    assert first["trained_tokens"] > 0 and first["error"] is None
    assert first["hyperparameters"]["n_epochs"] == 1 and first["hyperparameters"]["batch_size"] == 4

    events = jobs.job_events(first["id"])
    kinds = {e["type"] for e in events}
    assert {"message", "metrics"} <= kinds
    metrics = [e for e in events if e["type"] == "metrics"]
    assert set(metrics[0]) == {"id", "created_at", "level", "message", "type", "data"}
    assert {"step", "epoch", "loss", "learning_rate", "tokens_per_second", "peak_memory_mb"} <= set(metrics[0]["data"])
    later = jobs.job_events(first["id"], after=events[2]["id"])
    assert later == events[3:]

    from trainer.models.generation import build_messages, generate, load

    loaded = load(first["fine_tuned_model"])
    assert isinstance(generate(loaded, [build_messages("hello")], max_new_tokens=4)[0], str)

    from tunepilot.cli.main import app

    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["jobs", "list", "--json"]).stdout)
    assert [j["id"] for j in listed["data"]] == [second["id"], first["id"]]
    got = json.loads(runner.invoke(app, ["jobs", "get", first["id"], "--json"]).stdout)
    assert got["status"] == "succeeded" and got["output_dir"] == first["output_dir"]
    evs = json.loads(runner.invoke(app, ["jobs", "events", first["id"], "--json"]).stdout)
    assert len(evs["data"]) == len(events)
    followed = runner.invoke(app, ["jobs", "events", first["id"], "--follow"])  # returns: the job is finished
    assert followed.exit_code == 0 and "successfully completed" in followed.stdout
    result = runner.invoke(app, ["jobs", "cancel", first["id"], "--json"])
    assert result.exit_code == 2 and "already succeeded" in result.stderr
    with pytest.raises(jobs.JobStateError):
        jobs.resume_job(first["id"])


def test_cancel_stops_after_a_step_with_a_checkpoint(tmp_path, tiny_model_dir):
    job = jobs.create_job(make_cfg(tmp_path, tiny_model_dir, max_steps=400, batch_size=1))
    wait_until(lambda: any(e["type"] == "metrics" for e in jobs.job_events(job["id"])))
    cancelled = jobs.cancel_job(job["id"], wait=TIMEOUT)
    assert cancelled["status"] == "cancelled"
    assert any(p.name.startswith("checkpoint-") for p in os.scandir(job["output_dir"]))
    steps = [e["data"]["step"] for e in jobs.job_events(job["id"]) if e["type"] == "metrics"]
    assert steps and max(steps) < 400


def test_kill_9_marks_failed_and_resume_continues_from_checkpoint(tmp_path, tiny_model_dir):
    # Enough steps that the worker is still training when the first checkpoint appears, however fast
    # the machine; older checkpoints are pruned (save_total_limit), so wait for any, not for one by name.
    job = jobs.create_job(make_cfg(tmp_path, tiny_model_dir, max_steps=KILL_TEST_STEPS, batch_size=1))
    [pid] = wait_until(lambda: worker_pids(job["id"]))
    wait_until(lambda: any(name.startswith("checkpoint-") for name in os.listdir(job["output_dir"]))
               if os.path.isdir(job["output_dir"]) else False, poll=0.05)
    assert jobs.get_job(job["id"])["status"] == "running"
    os.kill(pid, signal.SIGKILL)
    failed = wait_until(lambda: (j := jobs.get_job(job["id"]))["status"] == "failed" and j)
    assert failed["error"]["code"] == "worker_exited" and "jobs resume" in failed["error"]["message"]

    resumed = jobs.resume_job(job["id"])
    assert resumed["status"] == "running" and resumed["error"] is None
    done = jobs.wait_for_job(job["id"], timeout=TIMEOUT)
    assert done["status"] == "succeeded", done
    messages = [e["message"] for e in jobs.job_events(job["id"])]
    assert any(m.startswith("Resuming from checkpoint-") for m in messages)
    last_steps = [e["data"]["step"] for e in jobs.job_events(job["id"]) if e["type"] == "metrics"]
    assert last_steps[-1] == KILL_TEST_STEPS


def test_bad_rows_fail_validation_unless_skipped(tmp_path, tiny_model_dir):
    rows = ROWS + ["{broken json"]
    with pytest.raises(jobs.JobError, match="line 9"):
        jobs.create_job(make_cfg(tmp_path, tiny_model_dir, rows=rows))
    [failed] = jobs.list_jobs()
    assert failed["status"] == "failed" and failed["error"]["code"] == "invalid_training_file"
    from tunepilot.cli.main import app

    config = tmp_path / "bad.yaml"
    config.write_text(f"model: {{base_model: '{tiny_model_dir}'}}\ndataset: {{path: '{failed['training_file']}'}}\n")
    result = CliRunner().invoke(app, ["jobs", "create", str(config), "--json"])
    assert result.exit_code == 2 and "line 9" in result.stderr and result.stdout == ""
    with pytest.raises(jobs.JobStateError, match="never started"):
        jobs.resume_job(failed["id"])
    job = jobs.create_job(make_cfg(tmp_path, tiny_model_dir, rows=rows), skip_bad_rows=True)
    assert job["status"] in ("queued", "running")
    done = jobs.wait_for_job(job["id"], timeout=TIMEOUT)
    assert done["status"] == "succeeded"
    card = json.load(open(os.path.join(done["output_dir"], "job_card.json"), encoding="utf-8"))
    assert card["data"]["skipped_rows"] == [{"line": 9, "message": card["data"]["skipped_rows"][0]["message"]}]


def test_missing_model_path_is_refused(tmp_path):
    # Refused before any job exists (by the launch rules when present, else by the pre-flight check).
    with pytest.raises(jobs.JobError, match="missing-model"):
        jobs.create_job(make_cfg(tmp_path, tmp_path / "missing-model"))
    assert not [j for j in jobs.list_jobs() if j["status"] != "failed"]
    with pytest.raises(jobs.JobError, match="No job"):
        jobs.get_job("ftjob-nope")


def test_job_with_merge_after_training_registers_the_merged_model(tmp_path, tiny_model_dir):
    """The worker finishes a run through the same finish_run as `tunepilot train`."""
    from trainer.models import registry as models

    cfg = make_cfg(tmp_path, tiny_model_dir, max_steps=2)
    cfg.saving.merge_after_training = True
    done = jobs.wait_for_job(jobs.create_job(cfg, suffix="merged")["id"], timeout=TIMEOUT)
    assert done["status"] == "succeeded", done
    merged = f"{done['output_dir']}/merged"
    assert str(models.resolve(done["fine_tuned_model"]).adapter_path) == f"{done['output_dir']}/adapter"
    assert (Path(merged) / "merge_info.json").exists()
    messages = [e["message"] for e in jobs.job_events(done["id"])]
    merged_at = next(i for i, m in enumerate(messages) if m.startswith(f"Merged model written to {merged}"))
    assert messages[merged_at + 1] == f"New fine-tuned model created: {done['fine_tuned_model']}"
    assert messages[-1] == "The job has successfully completed"
