"""Every dataset layout peers accept: weights, content parts, tool calling, text corpora, kinds and stages.

Each layout is read into the normalised shape (or refused with a line-numbered message), and the loss
mask is compared with the file: weight-0 assistant turns and tool results carry no loss, assistant
turns (tool calls included) do.
"""

from __future__ import annotations

import json

import pytest

from tests.support import write_jsonl
from trainer.data.check import check_dataset
from trainer.data.formats import DataError, load_examples, read_dataset

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def user(text):
    return {"role": "user", "content": text}


def assistant(text, **extra):
    return {"role": "assistant", "content": text, **extra}


def openai_tool_row():
    return {"messages": [
        user("Weather in Paris?"),
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\": \"SUNNYRESULT\"}"},
        assistant("It is sunny in Paris."),
    ], "tools": [WEATHER]}


def errors_of(tmp_path, rows, **kwargs) -> dict[int, str]:
    report = check_dataset(write_jsonl(tmp_path / "d.jsonl", rows), **kwargs)
    return {e["line"]: e["message"] for e in report.errors}


# ---------------------------------------------------------------- weights and content parts

def test_weights_are_kept_only_as_zero_and_checked_like_openai(tmp_path):
    row = {"messages": [user("q1"), assistant("skip me", weight=0), user("q2"), assistant("learn me", weight=1)]}
    [ex] = load_examples(write_jsonl(tmp_path / "w.jsonl", [row]))
    assert ex["messages"][1] == {"role": "assistant", "content": "skip me", "weight": 0}
    assert ex["messages"][3] == {"role": "assistant", "content": "learn me"}
    bad = errors_of(tmp_path, [
        row,
        {"messages": [user("q"), assistant("a", weight=2)]},
        {"messages": [user("q"), assistant("a", weight=0.5)]},
        {"messages": [user("q"), assistant("a", weight=True)]},
        {"messages": [{"role": "user", "content": "q", "weight": 1}, assistant("a")]},
        {"messages": [user("q"), assistant("a", weight=0)]},
    ])
    assert set(bad) == {2, 3, 4, 5, 6}
    assert "weight is 2; a weight must be 0 or 1" in bad[2]
    assert "must be 0 or 1" in bad[3] and "must be 0 or 1" in bad[4]
    assert "only assistant turns carry a weight" in bad[5]
    assert "every assistant turn has weight 0" in bad[6]


def test_content_parts_are_joined_and_other_parts_are_named(tmp_path):
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "value": "there"}]},
                        {"role": "assistant", "content": [{"type": "text", "value": "Hi!"}]}]}
    [ex] = load_examples(write_jsonl(tmp_path / "p.jsonl", [row]))
    assert ex["messages"] == [user("Hello\nthere"), assistant("Hi!")]
    bad = errors_of(tmp_path, [row, {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        assistant("a cat")]}, {"messages": [user("q"), assistant("a")], "images": ["cat.png"]}])
    assert "messages[0].content[1] is a 'image_url' part; only text parts" in bad[2]
    assert "the row has images" in bad[3]


# ---------------------------------------------------------------- tool calling layouts

def test_openai_tools_tool_calls_and_tool_turns(tmp_path):
    [ex] = load_examples(write_jsonl(tmp_path / "t.jsonl", [openai_tool_row()]))
    assert ex["tools"] == [WEATHER]
    call = ex["messages"][1]
    assert call == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}, "id": "call_1"}]}
    assert ex["messages"][2] == {"role": "tool", "content": "{\"sky\": \"SUNNYRESULT\"}", "tool_call_id": "call_1"}


def test_legacy_openai_functions_are_read_as_tools(tmp_path):
    row = {"functions": [WEATHER["function"]], "messages": [
        user("Weather in Oslo?"),
        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        {"role": "function", "name": "get_weather", "content": "rain"}, assistant("Rain in Oslo.")]}
    [ex] = load_examples(write_jsonl(tmp_path / "f.jsonl", [row]))
    assert ex["tools"] == [WEATHER]
    assert ex["messages"][1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert ex["messages"][2] == {"role": "tool", "content": "rain", "name": "get_weather"}


def test_sharegpt_glaive_function_call_and_observation(tmp_path):
    """LLaMA-Factory's glaive layout: `tools` is JSON text, calls and results are turns of their own."""
    row = {"conversations": [
        {"from": "human", "value": "Area of a 5 by 3 rectangle?"},
        {"from": "function_call", "value": json.dumps({"name": "calculate_area", "arguments": {"shape": "rectangle", "dimensions": [5, 3]}})},
        {"from": "observation", "value": "{\"area\": 15}"},
        {"from": "gpt", "value": "The area is 15."},
    ], "tools": json.dumps([{"name": "calculate_area", "description": "Area of a shape", "parameters": {"type": "object"}}])}
    plain = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}], "tools": "[]"}
    loaded = read_dataset(write_jsonl(tmp_path / "g.jsonl", [row, plain]))
    assert loaded.kind == "tools" and not loaded.errors
    ex = loaded.examples[0]
    assert ex["tools"] == [{"type": "function", "function": {"name": "calculate_area", "description": "Area of a shape",
                                                             "parameters": {"type": "object"}}}]
    assert [m["role"] for m in ex["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert ex["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"shape": "rectangle", "dimensions": [5, 3]}
    assert loaded.examples[1] == {"messages": [user("Hi"), assistant("Hello")]}  # "[]" tools: a plain chat row
    # The same conversation in `messages` with LLaMA-Factory's role tags reads the same.
    tagged = {"messages": [{"role": t["from"].replace("human", "user").replace("gpt", "assistant"), "content": t["value"]}
                           for t in row["conversations"]], "tools": row["tools"]}
    assert load_examples(write_jsonl(tmp_path / "tags.jsonl", [tagged])) == [ex]


def test_bad_tool_rows_get_line_numbered_errors(tmp_path):
    good = openai_tool_row()
    unknown = openai_tool_row()
    unknown["messages"][1]["tool_calls"][0]["function"]["name"] = "get_time"
    no_tools = openai_tool_row()
    del no_tools["tools"]
    bad_args = openai_tool_row()
    bad_args["messages"][1]["tool_calls"][0]["function"]["arguments"] = "{city: Paris"
    orphan = {"messages": [user("q"), {"role": "tool", "content": "r"}, assistant("a")], "tools": [WEATHER]}
    unanswered = {"messages": [user("q"), good["messages"][1], assistant("a")], "tools": [WEATHER]}
    bad = errors_of(tmp_path, [good, unknown, no_tools, bad_args, orphan, unanswered])
    assert set(bad) == {2, 3, 4, 5, 6}
    assert "calls 'get_time', which is not in the row's tools (get_weather)" in bad[2]
    assert "the row lists no tools" in bad[3]
    assert "arguments is not valid JSON" in bad[4]
    assert "role order" in bad[5] and "made no tool call" in bad[5]
    assert "need a 'tool' turn" in bad[6]


# ---------------------------------------------------------------- the loss mask against the file

def _trained_spans(tok, ids, labels, text):
    """Per character of `text`: whether the token covering it is trained on (label of the token before)."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == ids  # the mask is about exactly this rendering
    trained = [False] * len(text)
    for t, (start, end) in enumerate(enc["offset_mapping"]):
        if t > 0 and labels[t - 1] != -100:
            for c in range(start, end):
                trained[c] = True
    return trained


def _assert_mask_matches_file(tok, example, text, ids, labels, tools_native=False):
    trained = _trained_spans(tok, ids, labels, text)
    pos = 0
    for m in example["messages"]:
        pieces = [m["content"]] if m["content"] else []
        for call in m.get("tool_calls", []):
            pieces.append('"get_weather"' if not tools_native else "get_weather")
        for piece in pieces:
            start = text.index(piece, pos)
            span = trained[start:start + len(piece)]
            should = m["role"] == "assistant" and m.get("weight", 1) == 1
            assert all(span) if should else not any(span), (m, piece)
            pos = start + len(piece)


@pytest.mark.parametrize("template", ["gemma", "gemma-no-markers", "native-tools"])
def test_loss_mask_follows_weights_and_skips_tool_results(tmp_path, tiny_model_dir, template):
    from transformers import AutoTokenizer

    from trainer.data.sft import encode_example, shifted_labels
    from trainer.models.chat_format import render_prompt, supports_tools

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    if template == "gemma-no-markers":
        tok.chat_template = tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    if template == "native-tools":  # a template that renders tools itself (as Qwen's and Llama 3.1's do)
        tok.chat_template = (
            "{{ bos_token }}{% if tools %}<start_of_turn>tools\n{{ tools | tojson }}<end_of_turn>\n{% endif %}"
            "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n"
            "{% if m.get('tool_calls') %}{% for c in m['tool_calls'] %}CALL {{ c['function']['name'] }} "
            "{{ c['function']['arguments'] | tojson }}{% endfor %}{% else %}{{ m['content'] }}{% endif %}"
            "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>assistant\n{% endif %}")
        assert supports_tools(tok)
    rows = [openai_tool_row(), {"messages": [
        {"role": "system", "content": "Be brief."}, user("first question"), assistant("WEIGHTZERO reply", weight=0),
        user("second question"), assistant("WEIGHTONE reply")]}]
    for example in load_examples(write_jsonl(tmp_path / "m.jsonl", rows)):
        ids, mask = encode_example(tok, example)
        labels = shifted_labels(ids, mask)
        text = render_prompt(tok, example["messages"], add_generation_prompt=False, tools=example.get("tools"))
        _assert_mask_matches_file(tok, example, text, ids, labels, tools_native=template == "native-tools")
        assert any(x != -100 for x in labels)
    # The tool result and the weight-0 reply are in the input, never in the labels.
    ids, mask = encode_example(tok, load_examples(write_jsonl(tmp_path / "one.jsonl", [rows[0]]))[0])
    assert "SUNNYRESULT" in tok.decode(ids) and "SUNNYRESULT" not in tok.decode([i for i, k in zip(ids, mask) if k])


def test_fallback_rendering_is_the_same_at_inference(tiny_model_dir):
    """`generation.chat_prompt` renders a tool request exactly as training rendered that prefix."""
    from transformers import AutoTokenizer

    from trainer.models import generation
    from trainer.models.chat_format import (
        TOOL_CALL_FENCE,
        render_prompt,
        supports_tools,
    )

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    assert not supports_tools(tok)  # Gemma's template: the documented fallback
    row = openai_tool_row()
    trained = render_prompt(tok, row["messages"], add_generation_prompt=False, tools=row["tools"])
    asked = generation.chat_prompt(tok, row["messages"][:1], tools=row["tools"]).text
    assert trained.startswith(asked) and asked.endswith("<start_of_turn>model\n")
    assert '"name": "get_weather"' in asked and trained[len(asked):].startswith(TOOL_CALL_FENCE)


def test_tool_calls_are_parsed_back_or_named():
    from trainer.models.generation import tool_reply

    reply = tool_reply('Let me check.\n```tool_call\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n```', [WEATHER])
    assert reply.content == "Let me check." and not reply.problems
    assert reply.tool_calls == [{"id": "call_0", "type": "function",
                                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]
    tagged = tool_reply('<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>')
    assert tagged.tool_calls[0]["function"]["name"] == "get_weather"
    unknown = tool_reply('```tool_call\n{"name": "launch", "arguments": {}}\n```', [WEATHER])
    assert not unknown.tool_calls and "not one of the tools" in unknown.problems[0]
    broken = tool_reply('```tool_call\n{"name": "get_weather", "argumen": {}}\n```')
    assert not broken.tool_calls and broken.problems and "```tool_call" in broken.content


# ---------------------------------------------------------------- text corpora and placeholders

def test_txt_files_split_into_documents_at_blank_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("First document,\nstill the first.\n\n\nSecond document.\n   \nThird one.\n", encoding="utf-8")
    loaded = read_dataset(path)
    assert loaded.kind == "text" and loaded.file_format == "txt"
    assert loaded.examples == [{"text": "First document,\nstill the first."}, {"text": "Second document."}, {"text": "Third one."}]
    assert loaded.lines == [1, 5, 7]
    report = check_dataset(path, max_seq_length=4)
    assert report.ok and report.kind == "text"
    assert "assistant" not in " ".join(report.warnings) and "documents are longer" in " ".join(report.warnings)
    assert "assistant" not in report.too_long["truncation"]


def test_text_rows_and_placeholder_warning(tmp_path):
    rows = [{"instruction": "hi", "output": "I am {{name}}, made by {{author}}."},
            {"instruction": "who are you", "output": "An assistant."},
            {"instruction": "and you?", "output": "Still {{ name }}."}]
    report = check_dataset(write_jsonl(tmp_path / "identity.jsonl", rows))
    assert report.ok
    [warning] = [w for w in report.warnings if "placeholder" in w]
    assert "{{name}}" in warning and "{{author}}" in warning and "lines 1, 3" in warning
    text = read_dataset(write_jsonl(tmp_path / "t.jsonl", [{"text": "plain words"}]))
    assert text.kind == "text" and text.examples == [{"text": "plain words"}]


# ---------------------------------------------------------------- kinds, fields and stages

PAIR = {"conversations": [{"from": "human", "value": "Say hi"}], "chosen": {"from": "gpt", "value": "Hi!"},
        "rejected": {"from": "gpt", "value": "No."}}
KTO_ROW = {"messages": [user("Say hi"), assistant("Go away.")], "label": False}


@pytest.mark.parametrize(("rows", "kind"), [
    ([{"messages": [user("q"), assistant("a", weight=1)]}], "sft"),
    ([openai_tool_row()], "tools"),
    ([{"text": "a document"}], "text"),
    ([PAIR], "preference"),
    ([KTO_ROW, {**KTO_ROW, "label": True}], "kto"),
])
def test_check_names_the_kind_and_what_fields_become(tmp_path, rows, kind):
    stage = {"preference": "dpo", "kto": "kto"}.get(kind, "sft")
    report = check_dataset(write_jsonl(tmp_path / "k.jsonl", rows), stage=stage).to_dict()
    assert report["kind"] == kind and report["stage"] == stage and report["ok"], report
    assert report["fields"]
    if kind == "tools":
        assert "tool results, context only" in report["fields"]["messages[].tool turns"]
        assert "rendered into the prompt" in report["fields"]["tools"]
    if kind == "sft":
        assert "0 context only" in report["fields"]["messages[].weight"]


def test_kto_file_with_the_sft_stage_names_the_kto_stage(tmp_path):
    path = write_jsonl(tmp_path / "kto.jsonl", [KTO_ROW, {**KTO_ROW, "label": True}])
    report = check_dataset(path)  # stage defaults to sft
    assert not report.ok and report.kind == "kto"
    assert 'use method.stage = "kto"' in report.fatal
    with pytest.raises(DataError, match='use method.stage = "kto"'):
        load_examples(path)  # the trainer's SFT reader refuses it the same way (labels false are never targets)
    pairs = check_dataset(write_jsonl(tmp_path / "dpo.jsonl", [PAIR]))
    assert "this is a preference set" in pairs.fatal.lower() and 'method.stage = "dpo" or "orpo"' in pairs.fatal
    chat = check_dataset(write_jsonl(tmp_path / "chat.jsonl", [openai_tool_row()]), stage="dpo")
    assert 'use method.stage = "sft"' in chat.fatal
    assert check_dataset(path, stage="nope").fatal.startswith("Unknown stage 'nope'")


def test_mixed_kinds_list_the_lines_of_each(tmp_path):
    rows = [PAIR, {"messages": [user("q"), assistant("a")]}, PAIR, {"messages": [user("q2"), assistant("a2")]}]
    report = check_dataset(write_jsonl(tmp_path / "mix.jsonl", rows))
    assert not report.ok
    assert "preference rows on lines 1, 3" in report.fatal and "chat rows on lines 2, 4" in report.fatal
    assert [e["line"] for e in report.errors] == [1, 2, 3, 4]
    # Chat rows with and without tools are one kind (a tool set usually has both).
    ok = check_dataset(write_jsonl(tmp_path / "tools.jsonl", [openai_tool_row(), rows[1]]))
    assert ok.ok and ok.kind == "tools"


def test_cli_data_check_reports_kind_and_stage(tmp_path):
    from typer.testing import CliRunner

    from tunepilot.cli.main import app

    path = write_jsonl(tmp_path / "kto.jsonl", [KTO_ROW, {**KTO_ROW, "label": True}])
    result = CliRunner().invoke(app, ["data", "check", str(path), "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["kind"] == "kto" and 'method.stage = "kto"' in data["fatal"]
    result = CliRunner().invoke(app, ["data", "check", str(path), "--json", "--stage", "kto"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fields"]["label"].startswith("true")


def test_tools_file_for_chat_model_is_read_or_refused_by_name(tmp_path):
    from trainer.data.formats import read_tools

    (tmp_path / "lf.json").write_text(json.dumps([WEATHER["function"]]), encoding="utf-8")  # LLaMA-Factory's shape
    (tmp_path / "oa.json").write_text(json.dumps([WEATHER]), encoding="utf-8")
    assert read_tools(tmp_path / "lf.json") == read_tools(tmp_path / "oa.json") == [WEATHER]
    (tmp_path / "bad.json").write_text("[{\"description\": \"no name\"}]", encoding="utf-8")
    with pytest.raises(DataError, match=r"tools\[0\] has no function name"):
        read_tools(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("[{", encoding="utf-8")
    with pytest.raises(DataError, match="is not JSON"):
        read_tools(tmp_path / "broken.json")


def test_a_chat_request_with_tools_is_read_like_training_rows():
    from trainer.data.formats import normalise, request_conversation

    row = openai_tool_row()
    asked = request_conversation(row["messages"][:3], row["tools"])  # ends on the tool result: the model answers next
    assert asked == {"messages": normalise(row, "chat")["messages"][:3], "tools": [WEATHER]}
    with pytest.raises(ValueError, match="not in the row's tools"):
        request_conversation(row["messages"][:2], [{"type": "function", "function": {"name": "other"}}])
