"""Tool calling on `POST /v1/chat/completions`: requests with `tools`, assistant `tool_calls` and `tool` turns,
driven by the official `openai` client through a real server on the tiny model.

The random tiny model does not call tools by itself, so the reply -> `tool_calls` conversion is checked on
fixed reply texts (unit tests), and the server tests check that a tool request is read, rendered with the
tools exactly as `generation.chat_prompt` renders them (token counts and greedy text match the library),
and answered with objects the SDK parses.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from trainer.models import registry as models
from trainer.server import create_app
from trainer.server.background import BackgroundServer
from trainer.server.errors import APIError
from trainer.server.settings import ServerSettings

SHARED_HOME = True

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
TOOLS = [WEATHER]


# ---------------------------------------------------------------- unit: reply -> message

def test_reply_with_a_fenced_call_becomes_openai_tool_calls():
    from trainer.server.chat import reply_message

    text = 'Let me look.\n```tool_call\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```'
    message = reply_message(text, TOOLS)
    assert message["content"] == "Let me look."
    [call] = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_") and len(call["id"]) > 10
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


def test_reply_that_is_only_calls_has_null_content_and_distinct_ids():
    from trainer.server.chat import reply_message

    text = ('<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>\n'
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Lima"}}</tool_call>')
    message = reply_message(text, TOOLS)
    assert message["content"] is None
    assert [json.loads(c["function"]["arguments"])["city"] for c in message["tool_calls"]] == ["Rome", "Lima"]
    assert len({c["id"] for c in message["tool_calls"]}) == 2


def test_unreadable_or_unknown_calls_stay_in_the_text():
    from trainer.server.chat import reply_message

    bad = '```tool_call\n{"name": "get_weather", "arguments": \n```'
    unknown = '```tool_call\n{"name": "launch", "arguments": {}}\n```'
    for text in (bad, unknown, "Plain answer."):
        assert reply_message(text, TOOLS) == {"role": "assistant", "content": text, "refusal": None}
    assert reply_message(unknown, None)["content"] == unknown  # no tools offered: never parsed


def test_tool_choice_auto_none_and_unsupported_values():
    from trainer.server.chat import offered_tools

    assert offered_tools(None, TOOLS) == TOOLS and offered_tools("auto", TOOLS) == TOOLS
    assert offered_tools("none", TOOLS) is None and offered_tools(None, []) is None
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}, "sometimes"):
        with pytest.raises(APIError) as err:
            offered_tools(choice, TOOLS)
        assert err.value.status == 400 and err.value.param == "tool_choice"
    with pytest.raises(APIError, match="only allowed when 'tools'"):
        offered_tools("required", [])


# ---------------------------------------------------------------- through the server

@pytest.fixture(scope="module")
def server(module_home, tiny_model_dir):
    models.register_local("tiny", tiny_model_dir)
    with BackgroundServer(create_app(ServerSettings(max_body_bytes=64 * 1024))) as running:
        yield running


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


CONVERSATION = [
    {"role": "system", "content": "You help with travel."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": -3}'},
]
# What the server must render: the same conversation as the training reader normalises it.
READ = [
    {"role": "system", "content": "You help with travel."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": -3}'},
]


@pytest.mark.integration
def test_tool_request_is_rendered_with_the_tools_and_parses_into_sdk_types(client, tiny_model_dir):
    from openai.types.chat import ChatCompletion

    from trainer.models import generation
    from trainer.models.chat_format import render_prompt

    reply = client.chat.completions.create(model="tiny", messages=CONVERSATION, tools=TOOLS, tool_choice="auto",
                                           max_tokens=8, temperature=0)
    assert isinstance(reply, ChatCompletion)
    loaded = generation.load(str(tiny_model_dir))
    with_tools = generation.chat_prompt(loaded.tokenizer, READ, tools=TOOLS)
    assert "get_weather" in with_tools.text and '"temp_c": -3' in with_tools.text
    assert with_tools.text == render_prompt(loaded.tokenizer, READ, tools=TOOLS)
    # The server built exactly this prompt: same token count, and the same greedy reply as the library.
    assert reply.usage.prompt_tokens == with_tools.token_count
    assert reply.usage.prompt_tokens > generation.chat_prompt(loaded.tokenizer, READ).token_count
    local = generation.generate(loaded, [READ], max_new_tokens=8, tools=TOOLS)[0]
    choice = reply.choices[0]
    expected = generation.tool_reply(local, TOOLS)
    if expected.tool_calls:  # a random model almost never calls; if it did, the SDK object must carry the call
        assert choice.finish_reason == "tool_calls" and choice.message.tool_calls[0].type == "function"
    else:
        assert choice.message.content == local and choice.message.tool_calls is None
        assert choice.finish_reason in ("stop", "length")


@pytest.mark.integration
def test_tool_choice_none_leaves_the_tools_out_of_the_prompt(client, tiny_model_dir):
    from trainer.models import generation

    reply = client.chat.completions.create(model="tiny", messages=CONVERSATION, tools=TOOLS, tool_choice="none",
                                           max_tokens=4, temperature=0)
    loaded = generation.load(str(tiny_model_dir))
    assert reply.usage.prompt_tokens == generation.chat_prompt(loaded.tokenizer, READ).token_count
    assert reply.choices[0].message.tool_calls is None


@pytest.mark.integration
def test_streamed_tool_request_sends_the_held_back_reply_at_the_end(client):
    kwargs = {"model": "tiny", "messages": CONVERSATION, "tools": TOOLS, "max_tokens": 12, "temperature": 0,
              "extra_body": {"ignore_eos": True}}
    whole = client.chat.completions.create(**kwargs).choices[0]
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == (whole.message.content or "")
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == [whole.finish_reason]


@pytest.mark.integration
@pytest.mark.parametrize("change, param, words", [
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools.0", "no function name"),
    ({"tools": [{"type": "retrieval"}]}, "tools.0", "only function tools"),
    ({"tools": "not json"}, "tools", "not JSON"),
    ({"tools": [{"type": "function", "function": {"name": "get_time"}}]}, "messages.2.tool_calls", "get_weather"),
    ({"tool_choice": "required"}, "tool_choice", "not supported"),
    ({"functions": [WEATHER["function"]]}, "functions", "'tools'"),
])
def test_bad_tool_requests_are_400_naming_the_field(server, change, param, words):
    body = {"model": "tiny", "messages": CONVERSATION, "tools": TOOLS, "max_tokens": 4, **change}
    response = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert words in error["message"], error["message"]


@pytest.mark.integration
def test_text_completions_still_refuse_tools(server):
    body = {"model": "tiny", "prompt": "Hi", "tools": TOOLS, "max_tokens": 4}
    response = httpx.post(f"{server.base_url}/completions", json=body, timeout=60)
    assert response.status_code == 400 and response.json()["error"]["param"] == "tools"


# ---------------------------------------------------------------- a trained tool-calling model, end to end

def _call_rows(tools):
    from tests.test_tool_calling import request

    rows = []
    for tool, city in (("get_weather", "Paris"), ("get_time", "Oslo"), ("get_weather", "Lima"), ("get_time", "Rome")):
        call = {"type": "function", "function": {"name": tool, "arguments": json.dumps({"city": city})}}
        rows.append({"messages": [{"role": "user", "content": request(tool, city)},
                                  {"role": "assistant", "tool_calls": [call]}], "tools": tools})
    return rows


@pytest.mark.integration
def test_a_tool_calling_fine_tune_answers_with_tool_calls_through_serve_and_evals(client, tmp_path, monkeypatch):
    """Overfit the tiny model on 4 calls (about 20 s), then ask one of them through the server and the evals:
    the call it learned comes back as an OpenAI tool_calls object, streamed and not, and scores 1."""
    from tests.support import make_cfg
    from tests.test_tool_calling import request
    from trainer.models import device
    from trainer.training.recipe import train

    # No descriptions: the tiny model's context is 512 tokens and the reply needs about 75 of them.
    TWO_TOOLS = [{"type": "function", "function": {"name": name, "parameters": WEATHER["function"]["parameters"]}}
                 for name in ("get_weather", "get_time")]
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)  # float32 as trained, for the same greedy text
    from tests.tiny_model import save_tiny_model

    base = save_tiny_model(tmp_path / "base")
    cfg = make_cfg(tmp_path, base, rows=_call_rows(TWO_TOOLS), method__type="full", dataset__max_seq_length=512,
                   training__max_steps=150, training__batch_size=4, optimizer__learning_rate=1e-2)
    result = train(cfg, tmp_path / "out")
    assert result.status == "succeeded" and result.data_stats["kind"] == "tools"
    models.register_local("tiny-tools", result.final_path)

    ask = [{"role": "user", "content": request("get_weather", "Paris")}]
    reply = client.chat.completions.create(model="tiny-tools", messages=ask, tools=TWO_TOOLS, max_tokens=100,
                                           temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message.content
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    chunks = list(client.chat.completions.create(model="tiny-tools", messages=ask, tools=TWO_TOOLS, max_tokens=100,
                                                 temperature=0, stream=True))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert [(d.index, d.function.name, json.loads(d.function.arguments)) for d in deltas] == \
        [(0, "get_weather", {"city": "Paris"})]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # The same model in the eval harness: a row with tools and the expected call scores 1.
    from evals.runner import run_eval
    from evals.spec import build_spec

    data = tmp_path / "calls.jsonl"
    data.write_text(json.dumps({"input": ask[0]["content"], "tools": TWO_TOOLS,
                                "expected_tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}) + "\n",
                    encoding="utf-8")
    summary = run_eval(build_spec(dataset=str(data), models=["tiny-tools"], out=str(tmp_path / "run"),
                                  max_new_tokens=100, scorers=["tool_call"]), progress=False)
    assert summary["models"]["tiny-tools"]["scores"]["tool_call"] == 1.0
