"""Job fields and their API mapping without training: stored metadata and its filter, an older job
database gaining the new columns, OpenAI's event levels/types, integrations, path overrides, redaction."""

from __future__ import annotations

import sqlite3

import pytest
from starlette.requests import Request

from trainer.jobs import store
from trainer.planning.schema import TrainConfig
from trainer.server.errors import APIError, redact_paths
from trainer.server.fine_tuning import metadata_filter
from trainer.server.ft_mapping import (
    FineTuningJobRequest,
    MappingError,
    build_train_config,
    list_object,
    openai_event,
)
from tunepilot.core import workspace


def add_job(metadata=None) -> str:
    job_id = store.new_job_id()
    store.insert_job(job_id, TrainConfig(), None, "/tmp/out", {}, False, False, metadata=metadata)
    return job_id


def test_metadata_is_stored_and_filters_jobs():
    tagged = add_job({"team": "search", "run": "1"})
    other = add_job({"team": "ads"})
    bare = add_job()
    assert store.read_job(tagged)["metadata"] == {"team": "search", "run": "1"}
    assert store.read_job(bare)["metadata"] is None
    assert [j["id"] for j in store.read_jobs(metadata={"team": "search"})] == [tagged]
    assert [j["id"] for j in store.read_jobs(metadata={"team": "search", "run": "2"})] == []
    assert {j["id"] for j in store.read_jobs(metadata={})} == {tagged, other, bare}
    assert store.read_job(tagged)["seed"] == TrainConfig().training.seed


def test_create_job_refuses_metadata_outside_openais_limits():
    from trainer import jobs

    for bad in ({f"k{i}": "v" for i in range(17)}, {"k": 1}, {"k" * 65: "v"}, {"k": "v" * 513}):
        with pytest.raises(jobs.JobError) as err:
            jobs.create_job(TrainConfig(), metadata=bad)
        assert err.value.param == "metadata"
    assert store.read_jobs() == []  # refused before a job was stored


def test_an_older_database_gains_the_new_columns_and_keeps_its_jobs():
    path = workspace.jobs_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(path)
    old_schema = store._SCHEMA  # the first release's tables had none of _ADDED_COLUMNS
    old.executescript(old_schema)
    old.execute("INSERT INTO jobs(id, status, model, created_at, hyperparameters, output_dir, config) "
                "VALUES ('ftjob-old', 'succeeded', 'm', 1, '{}', '/tmp/x', '{}')")
    old.commit()
    old.close()
    job = store.read_job("ftjob-old")
    assert job["status"] == "succeeded" and job["metadata"] is None and job["estimated_finish"] is None
    with store.connect() as conn:
        columns = {r["name"] for r in conn.execute("PRAGMA table_info(jobs)")}
    assert set(store._ADDED_COLUMNS) <= columns


def test_events_use_openais_levels_and_types():
    assert openai_event({"id": "e1", "level": "warning", "type": "sample", "message": "m", "data": {}}) == {
        "id": "e1", "level": "warn", "type": "message", "message": "m", "data": {}, "object": "fine_tuning.job.event"}
    assert openai_event({"id": "e2", "level": "info", "type": "metrics", "message": "m"})["type"] == "metrics"
    assert list_object([{"id": "a"}, {"id": "b"}], True) == {"object": "list", "data": [{"id": "a"}, {"id": "b"}],
                                                             "has_more": True, "first_id": "a", "last_id": "b"}
    assert list_object([], False)["first_id"] is None


def request_for(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": []})


def test_metadata_filter_reads_the_deep_object_query_the_sdk_sends():
    assert metadata_filter(request_for("metadata%5Bteam%5D=search&metadata%5Brun%5D=1&limit=2")) == {
        "team": "search", "run": "1"}
    assert metadata_filter(request_for("limit=2")) == {}
    assert metadata_filter(request_for("metadata=null")) is None
    for bad in ("metadata=team", "metadata.team=x"):
        with pytest.raises(APIError) as err:
            metadata_filter(request_for(bad))
        assert err.value.status == 400 and err.value.param == "metadata"


def build(tmp_path, **fields):
    req = FineTuningJobRequest(model="gemma-3-270m", training_file="file-x", **fields)
    return build_train_config(req, tmp_path / "train.jsonl", None, 8, allow_local_paths=False)[0]


def test_a_wandb_integration_becomes_the_tracking_settings(tmp_path):
    cfg = build(tmp_path, integrations=[{"type": "wandb", "wandb": {"project": "p", "name": "n", "entity": "e",
                                                                     "tags": ["a"]}}])
    t = cfg.training
    assert (t.report_to, t.tracking_project, t.tracking_run_name, t.tracking_entity, t.tracking_tags) == (
        "wandb", "p", "n", "e", ["a"])
    assert build(tmp_path).training.report_to == "none"
    for bad, param in (([{"type": "comet"}], "integrations.0.type"), ([{"type": "wandb"}], "integrations.0.wandb.project")):
        with pytest.raises(MappingError) as err:
            build(tmp_path, integrations=bad)
        assert err.value.param == param


def test_server_paths_in_the_extension_are_refused_unless_allowed(tmp_path):
    with pytest.raises(MappingError) as err:
        build(tmp_path, tunepilot={"saving": {"output_dir": "/srv/elsewhere"}})
    assert err.value.param == "tunepilot.saving.output_dir"
    assert build(tmp_path, tunepilot={"training": {"max_steps": 3}}).training.max_steps == 3
    req = FineTuningJobRequest(model="gemma-3-270m", training_file="file-x",
                               tunepilot={"saving": {"output_dir": str(tmp_path / "out")}})
    cfg, _ = build_train_config(req, tmp_path / "train.jsonl", None, 8, allow_local_paths=True)
    assert cfg.saving.output_dir == str(tmp_path / "out")


def test_redact_paths_hides_server_paths_and_keeps_model_ids():
    assert redact_paths("/home/me/.tunepilot/models/x has no config.json") == "<server path> has no config.json"
    assert redact_paths("ft:tiny:s:ftjob-1:ckpt-step-2 and org/name") == "ft:tiny:s:ftjob-1:ckpt-step-2 and org/name"
    inside = workspace.home() / "runs" / "ftjob-x" / "checkpoint-3"
    assert redact_paths(f"folder {inside} is gone") == "folder $TUNEPILOT_HOME/runs/ftjob-x/checkpoint-3 is gone"
