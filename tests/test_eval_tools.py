"""Tool-calling eval rows (evals.tools): a `tools` column offers tools, `expected_tool_call` is scored by `tool_call`.

Unit tests read cells and score fixed replies; the integration test runs `run_eval` on the tiny model, in
process and through `tunepilot serve` with the openai provider, and checks the rows were asked with their
tools (the replies equal the library's `generate(..., tools=)`), batched one tool set at a time.
"""

from __future__ import annotations

import csv
import json

import pytest

from evals.errors import EvalError
from evals.scorers import RowContext, build_scorers
from evals.spec import ScorerSpec
from evals.tools import (
    NO_CELL,
    call_matches,
    expected_call,
    reply_calls,
    reply_text,
    row_tools,
)

WEATHER = {"type": "function", "function": {"name": "get_weather",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
TIME = {"name": "get_time", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}  # bare shape
CALL = '```tool_call\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n```'
ASK = [{"role": "user", "content": "Weather in Oslo?"}]


def test_cells_are_read_as_json_and_bad_ones_name_the_row():
    assert row_tools({"tools": json.dumps([TIME])}, 1, ASK)[0] == {"type": "function", "function": TIME}
    assert row_tools({"tools": ""}, 1, ASK) is None and row_tools({}, 1, ASK) is None
    with pytest.raises(EvalError, match="Row 3: the 'tools' cell is not JSON"):
        row_tools({"tools": "[{"}, 3, ASK)
    with pytest.raises(EvalError, match="Row 4: tools\\[0\\] has no function name"):
        row_tools({"tools": [{"type": "function", "function": {}}]}, 4, ASK)

    assert expected_call({"expected_tool_call": '{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}'}, 1) == \
        {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert expected_call({"expected_tool_call": {"name": "get_time"}}, 1) == {"name": "get_time"}
    assert expected_call({"expected_tool_call": "null"}, 1) is None
    assert expected_call({"expected_tool_call": " "}, 1) is NO_CELL and expected_call({}, 1) is NO_CELL
    with pytest.raises(EvalError, match="Row 2: expected_tool_call must be"):
        expected_call({"expected_tool_call": '{"arguments": {}}'}, 2)


def test_call_matching_exact_subset_name_only_and_no_call():
    calls = reply_calls("Sure. " + CALL, [WEATHER])
    assert calls == [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}]
    assert call_matches({"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}, calls)
    assert not call_matches({"name": "get_weather", "arguments": {"city": "Oslo"}}, calls)
    assert call_matches({"name": "get_weather", "arguments": {"city": "Oslo"}}, calls, subset=True)
    assert not call_matches({"name": "get_weather", "arguments": {"city": "Rome"}}, calls, subset=True)
    assert call_matches({"name": "get_weather"}, calls) and not call_matches({"name": "get_time"}, calls)
    assert call_matches(None, []) and not call_matches(None, calls)
    assert reply_calls(CALL, [{"type": "function", "function": TIME}]) == []  # a tool not offered is no call


def test_tool_call_scorer_on_fixed_replies():
    [scorer] = build_scorers([ScorerSpec(name="tool_call")])
    row = {"input": "Weather in Oslo?", "tools": json.dumps([WEATHER]),
           "expected_tool_call": json.dumps({"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}})}

    def score(output, row=row):
        return scorer.score(RowContext(output=output, expected=None, prompt="Weather in Oslo?", messages=ASK, row=row))

    assert score(CALL) == 1.0 and score("It is cold.") == 0.0
    assert score(CALL, {**row, "expected_tool_call": ""}) is None  # no expectation: not scored
    [subset] = build_scorers([ScorerSpec(name="tool_call", params={"match": "subset"})])
    loose = {**row, "expected_tool_call": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'}
    assert subset.score(RowContext(output=CALL, expected=None, prompt="", messages=ASK, row=loose)) == 1.0
    with pytest.raises(EvalError, match="use exact or subset"):
        build_scorers([ScorerSpec(name="tool_call", params={"match": "fuzzy"})])


def test_openai_tool_calls_are_written_back_as_the_fallback_block():
    from openai.types.chat import ChatCompletionMessageToolCall

    call = ChatCompletionMessageToolCall(id="call_1", type="function",
                                         function={"name": "get_weather", "arguments": '{"city": "Oslo"}'})
    text = reply_text(None, [call])
    assert reply_calls(text, [WEATHER]) == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert reply_text("plain", None) == "plain" and reply_text(None, None) == ""


def write_rows(path):
    rows = [
        {"question": "Weather in Oslo?", "tools": json.dumps([WEATHER]),
         "expected_tool_call": json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})},
        {"question": "Time in Lima?", "tools": json.dumps([TIME]), "expected_tool_call": json.dumps({"name": "get_time"})},
        {"question": "Say hi", "tools": "", "expected_tool_call": "null"},
    ]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.mark.integration
def test_run_eval_asks_rows_with_their_tools_locally_and_through_serve(tmp_path, tiny_model_dir, monkeypatch):
    from evals.runner import run_eval
    from evals.spec import build_spec
    from trainer.models import generation
    from trainer.models import registry as models
    from trainer.server import create_app
    from trainer.server.background import BackgroundServer

    rows = write_rows(tmp_path / "tools.csv")
    batches = []
    real = generation.generate

    def recording(loaded, messages_batch, *args, **kwargs):
        batches.append((len(messages_batch), [t["function"]["name"] for t in kwargs.get("tools") or []]))
        return real(loaded, messages_batch, *args, **kwargs)

    monkeypatch.setattr(generation, "generate", recording)
    models.register_local("tiny", tiny_model_dir)
    with BackgroundServer(create_app()) as server:
        spec = build_spec(dataset=str(tmp_path / "tools.csv"), out=str(tmp_path / "run"), max_new_tokens=6,
                          batch_size=4, models=["tiny", {"id": "openai:tiny", "base_url": server.base_url,
                                                         "label": "served"}])
        summary = run_eval(spec, progress=False)

    assert sorted(batches) == sorted([(1, ["get_weather"]), (1, ["get_time"]), (1, [])])  # one tool set per batch
    records = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    loaded = generation.load("tiny")
    tools_of = [[WEATHER], [{"type": "function", "function": TIME}], None]
    for record in records:
        assert record["error"] is None, record
        i = record["row"]
        local = real(loaded, [[{"role": "user", "content": rows[i]["question"]}]], max_new_tokens=6,
                     tools=tools_of[i])[0]
        served_calls = reply_calls(record["output"], tools_of[i])
        if record["model"] == "tiny" or not served_calls:
            assert record["output"] == local, record  # asked with the row's tools, in process and over HTTP
        want = expected_call(rows[i], i + 1)
        assert record["scores"]["tool_call"] == float(call_matches(want, reply_calls(local, tools_of[i])))
    for name in ("tiny", "served"):
        assert summary["models"][name]["errors"] == 0 and "tool_call" in summary["models"][name]["scores"]


def test_training_format_rows_become_tool_eval_rows(tmp_path):
    from evals.datasets import load_dataset

    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    rows = [{"messages": [{"role": "user", "content": "Weather in Oslo?"},
                          {"role": "assistant", "content": None, "tool_calls": [call]}], "tools": [WEATHER]},
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}]
    path = tmp_path / "held_out.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    first, second = load_dataset(path).rows
    assert first["input"] == "Weather in Oslo?" and "expected" not in first
    assert expected_call(first, 1) == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert row_tools(first, 1, ASK) == [WEATHER]
    assert second["expected"] == "Hello" and "expected_tool_call" not in second
