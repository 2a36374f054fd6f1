"""Files and fine-tuning jobs through the API with the `openai` client: upload, train the tiny model,
poll to success, chat with the fine-tuned model, cancel, and delete it with the owner key.
"""

from __future__ import annotations

import io
import json
import time

import httpx
import openai
import pytest

from tests.support import chat_rows
from trainer.models import registry as models
from trainer.server import create_app
from trainer.server.background import BackgroundServer
from trainer.server.settings import ServerSettings

pytestmark = pytest.mark.integration

API_KEY, OWNER_KEY = "user-key", "owner-key"

GOOD_ROWS = chat_rows(6, "What is LoRA? ({i})", "LoRA adds low-rank adapters to a frozen model.", repeat=1)

FEW_STEPS = {"training": {"max_steps": 2, "device": "cpu"}, "saving": {"save_every_n_steps": 1}}


SHARED_HOME = True  # the server thread, the job workers and the tests share one workspace


@pytest.fixture(scope="module")
def server(module_home, tiny_model_dir):
    models.register_local("tiny", tiny_model_dir)
    with BackgroundServer(create_app(ServerSettings(api_key=API_KEY, owner_key=OWNER_KEY))) as running:
        yield running


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)


def jsonl(rows) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode() + b"\n"


@pytest.fixture
def training_file(client):
    return client.files.create(file=("train.jsonl", io.BytesIO(jsonl(GOOD_ROWS))), purpose="fine-tune")


def wait_for(client, job_id: str, statuses: tuple[str, ...], timeout: float = 300):
    deadline = time.monotonic() + timeout
    job = client.fine_tuning.jobs.retrieve(job_id)
    while job.status not in statuses and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job_id)
    return job


def test_upload_a_valid_training_file(client, training_file):
    assert training_file.id.startswith("file-") and training_file.purpose == "fine-tune"
    assert training_file.filename == "train.jsonl" and training_file.bytes == len(jsonl(GOOD_ROWS))
    assert client.files.retrieve(training_file.id).id == training_file.id
    assert training_file.id in [f.id for f in client.files.list().data]
    assert client.files.content(training_file.id).read() == jsonl(GOOD_ROWS)  # the data, not its metadata


def test_upload_an_invalid_training_file_is_400_with_line_errors(client):
    bad = jsonl(GOOD_ROWS[:1]) + b'{"messages": [broken json\n' + jsonl([{"text_without_messages": 1}])
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("bad.jsonl", io.BytesIO(bad)), purpose="fine-tune")
    body = err.value.body
    assert body["code"] == "invalid_training_file"
    assert "line 2" in body["message"]
    assert all(f.filename != "bad.jsonl" for f in client.files.list().data)


def test_upload_with_another_purpose_or_extension_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("train.jsonl", io.BytesIO(jsonl(GOOD_ROWS))), purpose="assistants")
    assert err.value.body["param"] == "purpose"
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("notes.txt", io.BytesIO(b"hello")), purpose="fine-tune")


def test_unknown_file_and_job_ids_are_404(client):
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-doesnotexist")


def test_job_with_unknown_training_file_or_bad_hyperparameters_is_400(client, training_file):
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny", training_file="file-missing000")
    assert err.value.body["param"] == "training_file"
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny", training_file=training_file.id,
                                       hyperparameters={"n_epochs": 0})
    assert err.value.body["param"] == "hyperparameters.n_epochs"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(model="no-such-base", training_file=training_file.id)


def test_fine_tune_the_tiny_model_then_chat_with_it_and_delete_it(client, server, training_file):
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=training_file.id, suffix="srv",
        hyperparameters={"n_epochs": 1, "batch_size": 2, "learning_rate_multiplier": 2},
        extra_body={"tunepilot": FEW_STEPS, "integrations": []})
    assert job.object == "fine_tuning.job" and job.training_file == training_file.id
    assert job.hyperparameters.batch_size == 2 and job.hyperparameters.learning_rate_multiplier == 2
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(limit=10).data]

    job = wait_for(client, job.id, ("succeeded", "failed", "cancelled"))
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:tiny:srv:")

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert events and all(e.object == "fine_tuning.job.event" for e in events)
    assert events[0].created_at >= events[-1].created_at  # newest first, as OpenAI lists them
    assert any(e.type == "metrics" for e in events)
    older = client.fine_tuning.jobs.list_events(job.id, limit=2, after=events[0].id).data
    assert [e.id for e in older] == [e.id for e in events[1:3]]

    # the fine-tuned id works in chat at once, on the base weights already loaded for "tiny"
    assert job.fine_tuned_model in [m.id for m in client.models.list().data]
    reply = client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=5, temperature=0)
    assert reply.model == job.fine_tuned_model and reply.usage.completion_tokens > 0
    client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    loaded = httpx.get(f"{server.base_url}/tunepilot/status", headers={"Authorization": f"Bearer {API_KEY}"},
                       timeout=30).json()["models"]["loaded"]
    assert len(loaded) == 1 and set(loaded[0]["models"]) == {"tiny", job.fine_tuned_model}

    # cancelling a finished job is a conflict
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.cancel(job.id)

    # deleting needs the owner key, not just the API key
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete(job.fine_tuned_model)
    with pytest.raises(openai.BadRequestError):
        openai.OpenAI(base_url=server.base_url, api_key=OWNER_KEY, max_retries=0).models.delete("tiny")
    owner = openai.OpenAI(base_url=server.base_url, api_key=OWNER_KEY, max_retries=0)
    assert owner.models.delete(job.fine_tuned_model).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "Hi"}])


def test_cancel_a_second_job(client, training_file):
    job = client.fine_tuning.jobs.create(model="tiny", training_file=training_file.id,
                                         extra_body={"tunepilot": {"training": {"max_steps": 200, "device": "cpu"}}})
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.id == job.id
    final = wait_for(client, job.id, ("cancelled", "succeeded", "failed"))
    assert final.status == "cancelled"
    with pytest.raises(openai.ConflictError) as err:
        client.fine_tuning.jobs.cancel(job.id)
    assert err.value.body["code"] == "job_not_cancellable"


def test_cli_models_delete_needs_the_owner_key(monkeypatch, tiny_model_dir):
    from typer.testing import CliRunner

    from tunepilot.cli.main import app

    models.register_finetuned("ft:tiny:cli:ftjob-test", "tiny", tiny_model_dir)
    monkeypatch.setenv("TUNEPILOT_API_KEY", API_KEY)
    monkeypatch.setenv("TUNEPILOT_OWNER_KEY", OWNER_KEY)
    runner = CliRunner()
    refused = runner.invoke(app, ["models", "delete", "ft:tiny:cli:ftjob-test"])
    assert refused.exit_code == 2 and "owner key" in refused.output
    done = runner.invoke(app, ["models", "delete", "ft:tiny:cli:ftjob-test", "--owner-key", OWNER_KEY, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["deleted"] is True
    assert "ft:tiny:cli:ftjob-test" not in [e.id for e in models.list_models()]
