"""The official `openai` client end to end: create -> events -> checkpoints -> pause -> resume ->
succeeded -> chat on a checkpoint and on the final model, every reply parsed into the SDK's types.

The tiny model trains 4 steps (checkpoints every 2, the 2 newest kept); the pause is sent right after
the create, so the worker stops at the end of step 1 (it reads the request at every step end).
"""

from __future__ import annotations

import csv
import io
import json
import time

import openai
import pytest
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from tests.support import chat_rows
from trainer.models import registry as models
from trainer.server import create_app
from trainer.server.background import BackgroundServer

pytestmark = pytest.mark.integration

SHARED_HOME = True
ROWS = chat_rows(8, "What is LoRA? ({i})", "LoRA adds low-rank adapters to a frozen model.", repeat=1)
VALID_ROWS = chat_rows(2, "Explain LoRA ({i})", "LoRA trains small adapters.", repeat=1)
TUNEPILOT = {"training": {"max_steps": 4, "device": "cpu"}, "saving": {"save_every_n_steps": 2, "save_total_limit": 2}}


@pytest.fixture(scope="module")
def client(module_home, tiny_model_dir):
    models.register_local("tiny", tiny_model_dir)
    with BackgroundServer(create_app()) as running:
        yield openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0, timeout=120)


def upload(client, name, rows):
    data = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
    return client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune")


def wait_for(client, job_id, statuses, timeout=400):
    deadline = time.monotonic() + timeout
    job = client.fine_tuning.jobs.retrieve(job_id)
    while job.status not in statuses and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job_id)
    return job


def test_create_pause_resume_checkpoints_and_chat_with_the_openai_client(client):
    train_file, valid_file = upload(client, "train.jsonl", ROWS), upload(client, "valid.jsonl", VALID_ROWS)
    job = client.fine_tuning.jobs.create(model="tiny", training_file=train_file.id, validation_file=valid_file.id,
                                         suffix="flow", seed=7, metadata={"team": "search", "run": "1"},
                                         hyperparameters={"batch_size": 2}, extra_body={"tunepilot": TUNEPILOT})
    assert isinstance(job, FineTuningJob) and job.metadata == {"team": "search", "run": "1"}
    paused = client.fine_tuning.jobs.pause(job.id)
    assert isinstance(paused, FineTuningJob)
    paused = wait_for(client, job.id, ("paused", "succeeded", "failed"))
    assert paused.status == "paused", paused.error

    (first,) = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert isinstance(first, FineTuningJobCheckpoint) and first.step_number == 1
    assert first.fine_tuned_model_checkpoint == f"ft:tiny:flow:{job.id}:ckpt-step-1"
    assert first.metrics.train_loss > 0 and 0 <= first.metrics.train_mean_token_accuracy <= 1
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.pause(job.id)  # already paused

    assert isinstance(client.fine_tuning.jobs.resume(job.id), FineTuningJob)
    done = wait_for(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    assert done.seed == 7 and done.validation_file == valid_file.id and done.trained_tokens > 0
    assert done.fine_tuned_model == f"ft:tiny:flow:{job.id}" and done.estimated_finish is None

    events = client.fine_tuning.jobs.list_events(job.id, limit=200).data
    assert all(isinstance(e, FineTuningJobEvent) and e.type in ("message", "metrics") for e in events)
    assert all(e.level in ("info", "warn", "error") for e in events)
    train_metrics = [e.data for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert sorted(m["step"] for m in train_metrics) == [1, 2, 3, 4]
    assert all({"step", "train_loss", "valid_loss", "learning_rate", "tokens_per_second"} <= set(m) for m in train_metrics)
    assert any(e.type == "metrics" and e.data.get("valid_loss") is not None for e in events)

    # two kept (save_total_limit); the rotated-away step-1 checkpoint is no longer a model
    page = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert [c.step_number for c in page.data] == [4, 2] and page.has_more is False
    assert all(c.metrics.valid_loss is not None for c in page.data)  # a validation loss at every checkpoint
    one = client.fine_tuning.jobs.checkpoints.list(job.id, limit=1)
    assert one.has_more is True and [c.step_number for c in one.data] == [4]
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id, after=one.data[0].id).data] == [2]
    model_ids = [m.id for m in client.models.list().data]
    assert page.data[1].fine_tuned_model_checkpoint in model_ids and first.fine_tuned_model_checkpoint not in model_ids

    for model in (page.data[1].fine_tuned_model_checkpoint, done.fine_tuned_model):
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is LoRA?"}],
                                               max_tokens=4, temperature=0)
        assert isinstance(reply, ChatCompletion) and reply.model == model and reply.usage.completion_tokens > 0
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=first.fine_tuned_model_checkpoint, messages=[{"role": "user", "content": "Hi"}])

    # the result file is a stored file: a CSV of the step metrics
    (result_id,) = done.result_files
    assert client.files.retrieve(result_id).purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(client.files.content(result_id).text)))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and float(rows[0]["train_loss"]) > 0

    # metadata filters the list, as the SDK sends it (metadata[k]=v)
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "search"}).data]
    assert job.id not in [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "other"}).data]

    # bad input: pausing a finished job is 409 in OpenAI's error shape
    with pytest.raises(openai.ConflictError) as err:
        client.fine_tuning.jobs.pause(job.id)
    assert err.value.body["code"] == "job_not_pausable" and "succeeded" in err.value.body["message"]
    assert err.value.response.json()["error"]["type"] == "invalid_request_error"


def test_wandb_integration_without_the_package_is_refused_in_one_line(client):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    train_file = upload(client, "train2.jsonl", ROWS)
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny", training_file=train_file.id,
                                       integrations=[{"type": "wandb", "wandb": {"project": "p"}}])
    assert "pip install wandb" in err.value.body["message"] and "\n" not in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny", training_file=train_file.id,
                                       extra_body={"integrations": [{"type": "comet"}]})
    assert err.value.body["param"] == "integrations.0.type"


def test_resume_after_the_checkpoint_folder_was_deleted_is_409_and_the_job_fails(client):
    import shutil

    from trainer import jobs

    train_file = upload(client, "train3.jsonl", ROWS)
    job = client.fine_tuning.jobs.create(model="tiny", training_file=train_file.id, extra_body={"tunepilot": TUNEPILOT})
    client.fine_tuning.jobs.pause(job.id)
    assert wait_for(client, job.id, ("paused", "succeeded", "failed")).status == "paused"
    shutil.rmtree(f"{jobs.get_job(job.id)['output_dir']}/checkpoint-1")
    with pytest.raises(openai.ConflictError) as err:
        client.fine_tuning.jobs.resume(job.id)
    assert err.value.body["code"] == "checkpoint_missing"
    assert f"$TUNEPILOT_HOME/runs/{job.id}/checkpoint-1" in err.value.body["message"]
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and f"$TUNEPILOT_HOME/runs/{job.id}/checkpoint-1" in failed.error.message
