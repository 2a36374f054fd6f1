"""The OpenAI-compatible API through a real uvicorn server on loopback, driven by the official `openai` client.

One server per module (loading the tiny model once); the tests share its workspace, so the
conftest's per-test workspace is replaced by a module-wide one here.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from trainer.models import registry as models
from trainer.server import create_app
from trainer.server.background import BackgroundServer
from trainer.server.settings import ServerSettings

pytestmark = pytest.mark.integration
SHARED_HOME = True  # the server thread and the tests see one workspace for the whole module


@pytest.fixture(scope="module")
def server(module_home, tiny_model_dir):
    models.register_local("tiny", tiny_model_dir)
    settings = ServerSettings(max_body_bytes=64 * 1024, max_batch_size=8)
    with BackgroundServer(create_app(settings)) as running:
        yield running


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def status(server) -> dict:
    return httpx.get(f"{server.base_url}/tunepilot/status", timeout=30).json()


def test_models_list_has_the_default_and_the_registered_model(client):
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == models.DEFAULT_MODEL
    assert "tiny" in ids
    assert client.models.retrieve("tiny").owned_by == "user"


def test_chat_completion_returns_text_usage_and_finish_reason(client):
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello"}],
                                           max_tokens=6, temperature=0)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == "tiny"
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_greedy_chat_is_reproducible_and_matches_the_library(client, tiny_model_dir):
    from trainer.models import generation

    messages = [{"role": "user", "content": "LoRA is"}]
    first = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0)
    second = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0)
    assert first.choices[0].message.content == second.choices[0].message.content
    local = generation.generate(generation.load(str(tiny_model_dir)), [messages], max_new_tokens=8)[0]
    assert first.choices[0].message.content == local


def test_ignore_eos_generates_exactly_max_tokens(client):
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=12, temperature=0, extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == 12
    assert reply.choices[0].finish_reason == "length"


def test_streamed_chat_joins_to_the_same_text_and_reports_usage(client):
    kwargs = dict(model="tiny", messages=[{"role": "user", "content": "The answer is"}], max_tokens=20,
                  temperature=0, extra_body={"ignore_eos": True})
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20


def test_stream_ends_with_done_marker_on_the_wire(server):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "chat.completion.chunk"


def test_stream_failure_is_one_in_band_error_event_then_done(server, monkeypatch):
    """Once the headers are out, a failure is an error chunk, as OpenAI sends it; events end in "\n\n"."""
    from trainer.models import generation

    def failing(*args, **kwargs):
        raise RuntimeError("kaboom")
        yield  # a generator, as the real one is

    monkeypatch.setattr(generation, "stream", failing)
    body = {"model": "tiny", "prompt": "LoRA", "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{server.base_url}/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_raw())
    assert b"\r" not in raw and raw.endswith(b"\n\ndata: [DONE]\n\n")
    events = raw.decode().split("\n\n")[:-1]
    assert len(events) == 2 and all(e.startswith("data: ") for e in events)
    error = json.loads(events[0][len("data: "):])["error"]
    assert error["code"] == "generation_failed" and error["type"] == "server_error" and "kaboom" in error["message"]


def test_stop_sequence_cuts_the_reply(client):
    base = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello"}],
                                          max_tokens=16, temperature=0, extra_body={"ignore_eos": True})
    text = base.choices[0].message.content
    stop = text[3:5]
    assert stop.strip(), "the tiny model's reply should have text to cut at"
    cut = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello"}],
                                         max_tokens=16, temperature=0, stop=[stop], extra_body={"ignore_eos": True})
    assert cut.choices[0].message.content == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello"}],
                                              max_tokens=16, temperature=0, stop=stop, stream=True,
                                              extra_body={"ignore_eos": True})
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text[: text.find(stop)]


def test_sampling_with_a_seed_is_reproducible(client):
    kwargs = dict(model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=10,
                  temperature=1.0, top_p=0.9, seed=7)
    assert (client.chat.completions.create(**kwargs).choices[0].message.content
            == client.chat.completions.create(**kwargs).choices[0].message.content)


def test_text_completion_continues_raw_text(client, tiny_model_dir):
    from transformers import AutoTokenizer

    reply = client.completions.create(model="tiny", prompt="LoRA adds", max_tokens=5, temperature=0)
    assert reply.object == "text_completion"
    assert reply.choices[0].finish_reason in ("stop", "length")
    raw_tokens = len(AutoTokenizer.from_pretrained(str(tiny_model_dir))("LoRA adds")["input_ids"])
    assert reply.usage.prompt_tokens == raw_tokens  # the raw text only, no chat template around it
    several = client.completions.create(model="tiny", prompt=["LoRA adds", "QLoRA loads"], max_tokens=5,
                                        temperature=0)
    assert [c.index for c in several.choices] == [0, 1]
    assert several.choices[0].text == reply.choices[0].text
    streamed = client.completions.create(model="tiny", prompt="LoRA adds", max_tokens=5, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == reply.choices[0].text


def test_concurrent_requests_all_get_answers(client, server):
    results: list = [None] * 4

    def ask(i: int) -> None:
        try:
            results[i] = client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=8, temperature=0,
                extra_body={"ignore_eos": True})
        except Exception as exc:  # reported below with the other results
            results[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    assert all(r.usage.completion_tokens == 8 for r in results)
    assert len({r.choices[0].message.content for r in results}) == 1  # same prompt, greedy: same reply
    assert status(server)["generation"]["active_generations"] == 0


def test_langchain_chat_openai_works_against_the_server(server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="tiny", base_url=server.base_url, api_key="unused", temperature=0, max_tokens=6,
                     max_retries=0)
    message = llm.invoke("Hello")
    assert isinstance(message.content, str)
    pieces = list(llm.stream("Hello"))
    assert "".join(p.content for p in pieces) == message.content


def test_eval_harness_openai_provider_matches_the_local_provider(server):
    from evals.providers import make_provider
    from evals.spec import GenerationSpec, ProviderSpec

    rows = [[{"role": "user", "content": "What is LoRA?"}], [{"role": "user", "content": "Hello"}]]
    gen = GenerationSpec(max_new_tokens=6, temperature=0)
    remote = make_provider(ProviderSpec(id="openai:tiny", base_url=server.base_url)).generate(rows, gen)
    local = make_provider(ProviderSpec(id="tiny"), device="cpu").generate(rows, gen)
    assert [g.error for g in remote] == [None, None]
    assert [g.text for g in remote] == [g.text for g in local]


def test_assistant_openai_engine_works_against_the_server(server):
    from assistant.engines.base import EngineUnavailable, Passage
    from assistant.engines.openai_engine import OpenAIEngine

    engine = OpenAIEngine(model="tiny", base_url=server.base_url, max_tokens=4, temperature=0)
    assert isinstance(engine.complete([("user", "Hello")]), str)
    assert all(isinstance(c.content, str) for c in engine.llm(streaming=True).stream([("user", "Hello")]))
    # The answer prompt is longer than the tiny model's 512-token context: the server's 400 reaches
    # the engine as a one-line reason the assistant can show before falling back.
    passage = Passage(n=1, source="lora.md", heading="LoRA", text="LoRA adds adapters.", lang="en")
    with pytest.raises(EngineUnavailable, match="maximum context length is 512"):
        list(engine.stream("What is LoRA?", [passage], "en"))


def test_structured_output_requests_are_refused_clearly(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                       response_format={"type": "json_object"})
    assert err.value.body["param"] == "response_format"


def test_unknown_model_is_404_listing_the_available_ones(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "Hi"}])
    body = err.value.body
    assert body["code"] == "model_not_found" and body["param"] == "model"
    assert "tiny" in body["message"] and models.DEFAULT_MODEL in body["message"]


def test_malformed_json_is_400_in_openai_error_shape(server):
    response = httpx.post(f"{server.base_url}/chat/completions", content=b'{"model": "tiny", "messages": [',
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and "not valid JSON" in error["message"]


def test_invalid_parameters_are_400_naming_the_parameter(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], temperature=5)
    assert err.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], n=2)
    assert err.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=10_000)
    assert err.value.body["code"] == "context_length_exceeded"


def test_oversize_body_is_413(server):
    big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 100_000}]}
    response = httpx.post(f"{server.base_url}/chat/completions", json=big, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_oversize_chunked_body_without_length_is_413(server):
    def chunks():
        for _ in range(10):
            yield b"x" * 10_000

    response = httpx.post(f"{server.base_url}/chat/completions", content=chunks(),
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 413


def test_upload_over_the_upload_limit_is_413():
    settings = ServerSettings(max_upload_bytes=2_000)
    with BackgroundServer(create_app(settings)) as small:
        client = openai.OpenAI(base_url=small.base_url, api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as err:
            client.files.create(file=("train.jsonl", b'{"text": "hello"}\n' * 500), purpose="fine-tune")
        assert err.value.status_code == 413
        assert "TUNEPILOT_SERVE_MAX_UPLOAD_MB" in err.value.body["message"]


def test_unknown_route_is_404_in_openai_shape(server):
    response = httpx.get(f"{server.base_url}/nothing-here", timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_client_disconnect_mid_stream_stops_generation_and_server_stays_healthy(server, client):
    before = status(server)["generation"]["cancelled"]
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 480,
            "temperature": 0, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(3)]
    assert received[0].startswith("data: ")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        generation = status(server)["generation"]
        if generation["cancelled"] > before and generation["active_generations"] == 0:
            break
        time.sleep(0.1)
    generation = status(server)["generation"]
    assert generation["cancelled"] == before + 1 and generation["active_generations"] == 0
    cancelled = [r for r in generation["recent"] if r["finish_reason"] == "cancelled"][-1]
    assert cancelled["completion_tokens"] < 480
    # and the server still answers
    reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert reply.choices[0].message.content is not None


def test_api_key_is_required_when_set(tiny_model_dir):
    settings = ServerSettings(api_key="secret-key")
    with BackgroundServer(create_app(settings)) as keyed:
        anonymous = openai.OpenAI(base_url=keyed.base_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as err:
            anonymous.models.list()
        assert err.value.body["code"] == "invalid_api_key"
        no_header = httpx.get(f"{keyed.base_url}/models", timeout=30)
        assert no_header.status_code == 401 and no_header.json()["error"]["code"] == "missing_api_key"
        assert httpx.get(f"{keyed.root_url}/health", timeout=30).status_code == 200
        good = openai.OpenAI(base_url=keyed.base_url, api_key="secret-key", max_retries=0)
        assert "tiny" in [m.id for m in good.models.list().data]
