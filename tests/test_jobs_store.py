"""The job store on its own (no worker): rows <-> OpenAI job dicts, events, final states, and job ids
resolved for `tunepilot merge` through the jobs layer (trainer.training.merge sits below it)."""

from __future__ import annotations

from typer.testing import CliRunner

from trainer import jobs
from trainer.jobs import store
from trainer.planning.schema import TrainConfig
from tunepilot.cli.main import app


def _stored_job(tmp_path, job_id: str = "ftjob-stored", **cfg_sections) -> str:
    cfg = TrainConfig.model_validate({"model": {"base_model": "gemma-3-270m"},
                                      "dataset": {"path": str(tmp_path / "d.jsonl"), "eval_path": None},
                                      **cfg_sections})
    store.insert_job(job_id, cfg, "sfx", str(tmp_path / "run"), {"n_epochs": 1}, skip_bad_rows=True, overwrite=False)
    return job_id


def test_a_stored_job_reads_back_as_an_openai_job(tmp_path):
    job_id = _stored_job(tmp_path, method={"type": "full"})
    job = jobs.get_job(job_id)
    assert job["object"] == "fine_tuning.job" and job["status"] == "validating_files"
    assert job["training_file"] == str(tmp_path / "d.jsonl") and job["method"] == {"type": "full"}
    assert job["hyperparameters"] == {"n_epochs": 1} and job["result_files"] == [] and job["error"] is None
    assert store.job_record(job_id)["skip_bad_rows"] == 1 and store.job_config(job_id).method.type == "full"
    store.finish(job_id, "failed", error={"code": "x", "message": "boom", "param": None}, result_files=["a"])
    job = jobs.get_job(job_id)
    assert job["status"] == "failed" and job["finished_at"] and job["error"]["message"] == "boom"
    assert job["result_files"] == ["a"] and jobs.list_jobs(status="failed") == [job]


def test_events_page_by_id(tmp_path):
    job_id = _stored_job(tmp_path)
    first = store.add_event(job_id, "one")
    store.add_event(job_id, "two", type="metrics", data={"step": 1})
    events = jobs.job_events(job_id)
    assert [e["message"] for e in events] == ["one", "two"] and events[1]["data"] == {"step": 1}
    assert jobs.job_events(job_id, after=first["id"]) == events[1:]
    try:
        jobs.job_events(job_id, after="nonsense")
    except jobs.JobError as exc:
        assert "Bad event id" in str(exc)
    else:
        raise AssertionError("a bad event id must be refused")


def test_merge_resolves_job_ids_through_the_jobs_layer(tmp_path):
    missing = CliRunner().invoke(app, ["merge", "ftjob-nosuchjob"])
    assert missing.exit_code == 2 and "No job 'ftjob-nosuchjob'" in missing.stderr
    job_id = _stored_job(tmp_path, "ftjob-failedone")
    store.finish(job_id, "failed")
    failed = CliRunner().invoke(app, ["merge", job_id])
    assert failed.exit_code == 2
    assert "Job ftjob-failedone is failed; only a succeeded job has an adapter to merge." in failed.stderr
    store.finish(job_id, "succeeded")  # succeeded, but its folder holds no adapter: the folder's message
    empty = CliRunner().invoke(app, ["merge", job_id])
    assert empty.exit_code == 2 and "No adapter found" in empty.stderr
