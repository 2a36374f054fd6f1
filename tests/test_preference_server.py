"""OpenAI's `method: {type: "dpo"}` through the real API server with the `openai` client: upload pairs in OpenAI's
DPO JSONL, train the tiny model, and read the job back as a dpo job."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest

from trainer.models import registry as models
from trainer.server import create_app
from trainer.server.background import BackgroundServer
from trainer.server.settings import ServerSettings

pytestmark = pytest.mark.integration
SHARED_HOME = True  # the server thread, the job workers and the tests share one workspace
API_KEY = "user-key"

PAIRS = [{"input": {"messages": [{"role": "user", "content": f"Question {i}: say yes"}]},
          "preferred_output": [{"role": "assistant", "content": "The answer is yes."}],
          "non_preferred_output": [{"role": "assistant", "content": "The answer is no."}]} for i in range(6)]


@pytest.fixture(scope="module")
def client(module_home, tiny_model_dir):
    models.register_local("tiny", tiny_model_dir)
    with BackgroundServer(create_app(ServerSettings(api_key=API_KEY))) as running:
        yield openai.OpenAI(base_url=running.base_url, api_key=API_KEY, max_retries=0, timeout=120)


def test_a_dpo_job_trains_on_openai_preference_jsonl(client):
    data = "\n".join(json.dumps(p) for p in PAIRS).encode() + b"\n"
    upload = client.files.create(file=("pairs.jsonl", io.BytesIO(data)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=upload.id, suffix="dpo",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 2}}},
        extra_body={"tunepilot": {"training": {"max_steps": 2, "device": "cpu"}, "saving": {"save_every_n_steps": 1}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2
    deadline = time.monotonic() + 300
    while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:tiny:dpo:") and job.method.type == "dpo"
    metrics = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"]
    assert any("rewards/accuracies" in (e.data or {}) for e in metrics)
    reply = client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=3, temperature=0)
    assert reply.usage.completion_tokens > 0


def test_unsupported_methods_and_bad_beta_are_400(client):
    data = "\n".join(json.dumps(p) for p in PAIRS).encode() + b"\n"
    upload = client.files.create(file=("pairs.jsonl", io.BytesIO(data)), purpose="fine-tune")
    for method in ({"type": "reinforcement"}, {"type": "dpo", "dpo": {"hyperparameters": {"beta": -1}}}):
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.create(model="tiny", training_file=upload.id, method=method)
