"""Data loading and the pre-flight check: formats, encodings, and bad rows reported by line number."""

from __future__ import annotations

import json

import pytest

from tests.support import write_jsonl
from trainer.data.check import check_dataset
from trainer.data.formats import DataError, load_examples, read_dataset

CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                     {"role": "assistant", "content": "Hello!"}]}


def test_chat_jsonl_is_loaded_as_is(tmp_path):
    assert load_examples(write_jsonl(tmp_path / "d.jsonl", [CHAT])) == [CHAT]


def test_alpaca_with_system_input_and_history(tmp_path):
    row = {"instruction": "Translate", "input": "你好", "output": "Hello", "system": "You translate.",
           "history": [["Who are you?", "A translator."]]}
    [ex] = load_examples(write_jsonl(tmp_path / "a.jsonl", [row]))
    assert ex["messages"] == [
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A translator."},
        {"role": "user", "content": "Translate\n\n你好"}, {"role": "assistant", "content": "Hello"},
    ]


def test_sharegpt_prompt_completion_and_text(tmp_path):
    share = {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}], "system": "S"}
    [ex] = load_examples(write_jsonl(tmp_path / "s.jsonl", [share]))
    assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
    [pc] = load_examples(write_jsonl(tmp_path / "p.jsonl", [{"prompt": "2+2=", "completion": "4"}]))
    assert pc["messages"][-1] == {"role": "assistant", "content": "4"}
    [tx] = load_examples(write_jsonl(tmp_path / "t.jsonl", [{"text": "plain"}]))
    assert tx == {"text": "plain"}


def test_json_array_and_csv_formats(tmp_path):
    arr = tmp_path / "d.json"
    arr.write_text(json.dumps([{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}], indent=2))
    assert len(load_examples(arr)) == 2
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("instruction,input,output\nSay hi,,hi\n\"Multi\nline\",x,y\n", encoding="utf-8")
    examples = load_examples(csv_file)
    assert examples[1]["messages"][0]["content"] == "Multi\nline\n\nx"


def test_file_kind_follows_the_content_and_csv_rows_keep_their_lines(tmp_path):
    """The shared table reader (tunepilot.core.tables): a .jsonl array is JSON, a .json of lines is JSON Lines."""
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]
    (tmp_path / "array.jsonl").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    loaded = read_dataset(tmp_path / "array.jsonl")
    assert loaded.file_format == "json" and len(loaded.examples) == 2 and loaded.lines == [2, 6]
    write_jsonl(tmp_path / "lines.json", rows)
    loaded = read_dataset(tmp_path / "lines.json")
    assert loaded.file_format == "jsonl" and loaded.lines == [1, 2]
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('prompt,completion\n"two\nlines",x\nshort\nc,d,extra\n', encoding="utf-8")
    loaded = read_dataset(csv_file)
    assert loaded.lines == [2]
    assert loaded.errors == [{"line": 4, "message": "missing field 'completion'"},
                             {"line": 5, "message": "1 more value(s) than the 2 header columns"}]
    good = json.dumps(CHAT["messages"]).replace('"', '""')
    (tmp_path / "cells.csv").write_text(f'messages\n"{good}"\n"[{{""role"": ""user""}}"\n', encoding="utf-8")
    loaded = read_dataset(tmp_path / "cells.csv", fmt="chat")
    assert loaded.examples == [CHAT] and loaded.errors[0]["line"] == 3
    assert loaded.errors[0]["message"].startswith("column 'messages' is not valid JSON")
    (tmp_path / "d.tsv").write_text("prompt\tcompletion\na\tb\n", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported file type .tsv"):
        read_dataset(tmp_path / "d.tsv")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk", "gb18030"])
def test_chinese_encodings(tmp_path, encoding):
    path = tmp_path / "zh.csv"
    path.write_bytes("prompt,completion\n你是谁？,我是月儿。\n".encode(encoding))
    loaded = read_dataset(path)
    assert loaded.examples[0]["messages"][1]["content"] == "我是月儿。"
    # GB18030 is a superset of GBK; text that GBK covers is reported as "gbk", the name users know.
    assert loaded.encoding == ("utf-8-sig" if encoding == "utf-8-sig" else "gbk")


def test_bad_rows_are_listed_with_line_numbers(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [
        CHAT,
        "{not json",
        {"messages": [{"role": "assistant", "content": "first"}, {"role": "user", "content": "x"}]},
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}]},
        {"prompt": "only prompt"},
    ])
    report = check_dataset(path, fmt="chat")
    lines = {e["line"]: e["message"] for e in report.errors}
    assert set(lines) == {2, 3, 4, 5, 6}
    assert "invalid JSON" in lines[2]
    assert "role order" in lines[3]
    assert "empty" in lines[4]
    assert "last turn must be the assistant" in lines[5]
    assert "missing field 'messages'" in lines[6]
    assert not report.ok and report.n_examples == 1
    with pytest.raises(DataError, match="line 2"):
        load_examples(path, fmt="chat")
    assert len(load_examples(path, fmt="chat", skip_bad_rows=True)) == 1


def test_missing_alpaca_field_names_the_field(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "x", "output": "y"}, {"instruction": "x", "output": ""}])
    report = check_dataset(path)
    assert report.errors == [{"line": 2, "message": "field 'output' is empty"}]


def test_unknown_format_is_a_clear_error(tmp_path):
    report = check_dataset(write_jsonl(tmp_path / "u.jsonl", [{"question": "q", "answer": "a"}]))
    assert report.fatal and "answer, question" in report.fatal and "dataset.format" in report.fatal


def test_check_reports_length_duplicates_overlap_tokens_steps(tmp_path, tiny_model_dir):
    long_row = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
    train = write_jsonl(tmp_path / "train.jsonl", [CHAT, CHAT, long_row] + [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(9)])
    evalf = write_jsonl(tmp_path / "eval.jsonl", [CHAT, {"messages": [{"role": "user", "content": "new"},
                                                                      {"role": "assistant", "content": "x"}]}])
    report = check_dataset(train, max_seq_length=64, tokenizer=str(tiny_model_dir), eval_path=evalf, batch_size=4, epochs=2)
    d = report.to_dict()
    assert d["ok"] is True
    assert d["duplicates"] == [{"line": 2, "duplicate_of": 1}]
    assert d["too_long"]["count"] == 1 and d["too_long"]["examples"][0]["line"] == 3
    assert d["too_long"]["dropped"] == 1  # its assistant reply starts after token 64
    assert "cut from the end" in d["too_long"]["truncation"]
    assert d["eval"]["overlap"] == [{"eval_line": 1, "train_line": 1, "kind": "identical example"}]
    assert d["tokens"]["total"] > d["tokens"]["assistant"] > 0 and d["tokens"]["counted_with"] != "none"
    assert d["estimated_steps"] == {**d["estimated_steps"], "steps_per_epoch": 3, "total": 6}


def test_cli_data_check_json(tmp_path):
    from typer.testing import CliRunner

    from tunepilot.cli.main import app

    good = write_jsonl(tmp_path / "good.jsonl", [CHAT])
    result = CliRunner().invoke(app, ["data", "check", str(good), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    bad = write_jsonl(tmp_path / "bad.jsonl", [CHAT, "{oops"])
    result = CliRunner().invoke(app, ["data", "check", str(bad), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["errors"][0]["line"] == 2
