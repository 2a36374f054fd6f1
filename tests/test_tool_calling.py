"""Tool-calling SFT end to end on the tiny model: train on calls rendered by the fallback template, then
ask held-out requests through the generation stack (the chat path of chat-model, serve and evals).

The tiny random model (32 hidden units) cannot learn to copy an argument out of the request in a
test-sized run, so this is an overfit check on 16 short examples: after training it must answer
requests it never saw (other cities) with a parseable call to the right tool of the two it was
offered. The argument value it writes is one it memorised; that part is not checked.
"""

from __future__ import annotations

import json

import pytest

from tests.support import make_cfg

pytestmark = pytest.mark.integration

TOOLS = [{"type": "function", "function": {"name": name, "description": what,
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
         for name, what in (("get_weather", "Weather now"), ("get_time", "Local time"))]
CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Rome", "Dakar",
          "Delhi", "Accra", "Baku", "Hanoi", "Kyiv", "Minsk", "Riga", "Sofia"]


def request(tool: str, city: str) -> str:
    return f"What is the weather in {city}?" if tool == "get_weather" else f"What time is it in {city}?"


def tool_rows() -> list[dict]:
    rows = []
    for i, city in enumerate(CITIES):
        tool = "get_weather" if i % 2 == 0 else "get_time"
        call = {"type": "function", "function": {"name": tool, "arguments": json.dumps({"city": city})}}
        rows.append({"messages": [{"role": "user", "content": request(tool, city)},
                                  {"role": "assistant", "tool_calls": [call]}], "tools": TOOLS})
    return rows


def test_tool_calling_sft_emits_parseable_calls_for_held_out_requests(tmp_path, tiny_model_dir, monkeypatch):
    from typer.testing import CliRunner

    from trainer.models import device, generation
    from trainer.training.recipe import train
    from tunepilot.cli.main import app

    cfg = make_cfg(tmp_path, tiny_model_dir, rows=tool_rows(), method__type="full", dataset__max_seq_length=512,
                   training__max_steps=150, training__batch_size=8, optimizer__learning_rate=1e-2)
    result = train(cfg, tmp_path / "out")
    assert result.status == "succeeded" and result.data_stats["kind"] == "tools"
    assert result.losses[-1]["loss"] < 0.2

    loaded = generation.load(result.final_path, device="cpu", dtype="float32")
    held_out = [("get_weather", "Milan"), ("get_time", "Berlin"), ("get_weather", "Bern"), ("get_time", "Seoul")]
    replies = generation.generate(loaded, [[{"role": "user", "content": request(t, c)}] for t, c in held_out],
                                  max_new_tokens=100, tools=TOOLS)
    for (tool, city), text in zip(held_out, replies):
        parsed = generation.tool_reply(text, TOOLS)
        assert not parsed.problems and len(parsed.tool_calls) == 1, (city, text)
        call = parsed.tool_calls[0]["function"]
        assert call["name"] == tool, (city, text)
        assert isinstance(json.loads(call["arguments"]).get("city"), str)

    # `tunepilot chat-model --tools` asks through the same stack (float32 here, as above, for the same greedy text).
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    (tmp_path / "tools.json").write_text(json.dumps([t["function"] for t in TOOLS]), encoding="utf-8")  # LLaMA-Factory's shape
    out = CliRunner().invoke(app, ["chat-model", result.final_path, "--prompt", request("get_time", "Seoul"),
                                   "--tools", str(tmp_path / "tools.json"), "--max-new-tokens", "100", "--json"])
    assert out.exit_code == 0, out.output
    reply = json.loads(out.stdout)
    assert reply["reply"] == replies[3] and reply["tool_calls"][0]["function"]["name"] == "get_time"
