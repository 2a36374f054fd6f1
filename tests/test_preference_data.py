"""Preference and KTO data: row kinds, every layout read into TRL's shapes, line-numbered errors, warnings."""

from __future__ import annotations

import pytest

from tests.support import write_jsonl
from trainer.data.formats import DataError
from trainer.data.preference import (
    encode_reply,
    is_preference_file,
    kind_of_row,
    load_preference,
    read_preference,
)

U = [{"role": "user", "content": "Which planet is closest to the Sun?"}]
GOOD = "Mercury is closest to the Sun."
BAD = "离太阳最近的行星是水星。"
EXPECTED = {"prompt": U, "chosen": [{"role": "assistant", "content": GOOD}],
            "rejected": [{"role": "assistant", "content": BAD}]}


@pytest.mark.parametrize("row, kind", [
    ({"conversations": [], "chosen": {}, "rejected": {}}, "preference"),
    ({"instruction": "x", "chosen": "a", "rejected": "b"}, "preference"),
    ({"input": {}, "preferred_output": [], "non_preferred_output": []}, "preference"),
    ({"prompt": "q", "chosen": "a"}, "preference"),  # half a pair is a broken pair, not SFT
    ({"messages": [], "label": True}, "kto"),
    ({"prompt": "q", "completion": "a", "label": False}, "kto"),
    ({"conversations": [], "label": False}, "kto"),
    ({"messages": []}, None),
    ({"instruction": "x", "output": "y"}, None),
    ({"prompt": "q", "completion": "a"}, None),
    ({"text": "x", "label": True}, None),  # a label alone does not make a KTO row
    ("not a dict", None),
])
def test_kind_of_row(row, kind):
    assert kind_of_row(row) == kind


@pytest.mark.parametrize("row, layout", [
    ({"conversations": [{"from": "human", "value": U[0]["content"]}],
      "chosen": {"from": "gpt", "value": GOOD}, "rejected": {"from": "gpt", "value": BAD}}, "sharegpt"),
    ({"messages": U, "chosen": {"role": "assistant", "content": GOOD},
      "rejected": {"role": "assistant", "content": BAD}}, "messages"),
    ({"instruction": U[0]["content"], "chosen": GOOD, "rejected": BAD}, "alpaca"),
    ({"input": {"messages": U}, "preferred_output": [{"role": "assistant", "content": GOOD}],
      "non_preferred_output": [{"role": "assistant", "content": BAD}]}, "openai_dpo"),
    ({"prompt": U[0]["content"], "chosen": GOOD, "rejected": BAD}, "trl"),
    ({"prompt": U, "chosen": [{"role": "assistant", "content": GOOD}],
      "rejected": [{"role": "assistant", "content": BAD}]}, "trl"),
    # TRL's implicit prompt: the shared leading turns
    ({"chosen": U + [{"role": "assistant", "content": GOOD}], "rejected": U + [{"role": "assistant", "content": BAD}]}, "trl"),
])
def test_every_pair_layout_reads_to_the_same_trl_row(tmp_path, row, layout):
    data = read_preference(write_jsonl(tmp_path / "p.jsonl", [row]))
    assert (data.kind, data.layout, data.errors) == ("preference", layout, [])
    assert data.rows == [EXPECTED] and data.lines == [1]


def test_sharegpt_system_and_alpaca_history_become_prompt_turns(tmp_path):
    rows = [{"system": "Be brief.", "conversations": [{"from": "human", "value": "hi"}],
             "chosen": {"from": "gpt", "value": "hello"}, "rejected": {"from": "gpt", "value": "bye"}},
            {"system": "Be brief.", "history": [["q1", "a1"]], "instruction": "q2", "input": "more",
             "chosen": "yes", "rejected": "no"}]
    data = read_preference(write_jsonl(tmp_path / "p.jsonl", rows))
    assert data.errors == []
    assert data.rows[0]["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert [m["role"] for m in data.rows[1]["prompt"]] == ["system", "user", "assistant", "user"]
    assert data.rows[1]["prompt"][-1]["content"] == "q2\n\nmore"


def test_kto_rows_keep_their_labels_line_by_line(tmp_path):
    rows = [{"messages": U + [{"role": "assistant", "content": GOOD}], "label": True},
            {"messages": U + [{"role": "assistant", "content": BAD}], "label": False},
            {"prompt": "q", "completion": "a", "label": "false"},  # CSV-style text booleans
            {"prompt": "q", "completion": "a", "label": "yes"},
            {"messages": U, "label": True}]
    data = read_preference(write_jsonl(tmp_path / "k.jsonl", rows))
    assert data.kind == "kto" and data.layout == "kto_messages"
    assert [r["label"] for r in data.rows] == [True, False, False] and data.lines == [1, 2, 3]
    assert data.rows[1] == {"prompt": U, "completion": [{"role": "assistant", "content": BAD}], "label": False}
    assert data.errors == [{"line": 4, "message": "'label' must be true or false, got \"yes\""},
                           {"line": 5, "message": "the last turn must be the assistant reply that `label` judges"}]


def test_bad_pairs_are_named_with_their_line(tmp_path):
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"},
            {"prompt": "q", "chosen": "a"},
            {"prompt": "q", "chosen": "a", "rejected": ""},
            {"input": {"messages": U}, "preferred_output": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
             "non_preferred_output": [{"role": "assistant", "content": "c"}]},
            {"prompt": "q", "chosen": "a", "rejected": "b", "tools": [{"type": "function"}]},
            '{"prompt": "q", broken',
            {"prompt": U, "chosen": [{"role": "assistant", "content": "a", "weight": 0}], "rejected": "b"},
            {"prompt": U + [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                            {"role": "tool", "content": "1"}, {"role": "user", "content": "so?"}],
             "chosen": "a", "rejected": "b"}]
    data = read_preference(write_jsonl(tmp_path / "p.jsonl", rows))
    assert len(data.rows) == 1
    by_line = {e["line"]: e["message"] for e in data.errors}
    assert by_line[2] == "missing field 'rejected'"
    assert by_line[3] == "field 'rejected' is empty"
    assert "exactly one assistant reply" in by_line[4]
    assert "'tools'" in by_line[5] and "not supported" in by_line[5]
    assert "invalid JSON" in by_line[6]
    assert "'weight' only applies to SFT turns" in by_line[7]
    assert "tool calls in preference/KTO rows are not supported" in by_line[8]
    with pytest.raises(DataError, match=r"p.jsonl has 7 bad row\(s\): line 2: missing field 'rejected'"):
        load_preference(tmp_path / "p.jsonl")
    assert len(load_preference(tmp_path / "p.jsonl", skip_bad_rows=True).rows) == 1


def test_mixed_kinds_name_the_lines_of_the_other_kind(tmp_path):
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "c", "rejected": "d"},
            {"messages": U + [{"role": "assistant", "content": GOOD}]},
            {"messages": U + [{"role": "assistant", "content": GOOD}], "label": True}]
    data = read_preference(write_jsonl(tmp_path / "mixed.jsonl", rows))
    assert data.kind == "preference"
    assert data.errors == [
        {"line": 3, "message": "this row is an SFT/text example but the file is preference data; one file holds one kind"},
        {"line": 4, "message": "this row is kto but the file is preference data; one file holds one kind"}]


def test_identical_pair_unused_fields_and_one_sided_kto_are_warnings(tmp_path):
    pairs = read_preference(write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "q", "chosen": "same", "rejected": "same", "score": 3},
        {"prompt": "q", "chosen": "a", "rejected": "b"}]))
    assert len(pairs.rows) == 2 and not pairs.errors
    assert pairs.warnings == [
        {"line": 1, "message": "chosen and rejected are identical; this pair teaches nothing"},
        {"line": None, "message": "field(s) not used for preference training: 'score' (first on line 1)"}]
    kto = read_preference(write_jsonl(tmp_path / "k.jsonl", [{"prompt": "q", "completion": "a", "label": True}] * 2))
    assert kto.warnings == [{"line": None, "message": "every label is true (desirable); KTO learns most from both kinds"}]


def test_sft_files_are_not_preference_files(tmp_path):
    sft = write_jsonl(tmp_path / "sft.jsonl", [{"messages": U + [{"role": "assistant", "content": GOOD}]}])
    assert is_preference_file(sft) is None
    with pytest.raises(DataError, match='it is SFT data: use method.stage = "sft"'):
        read_preference(sft)
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    assert is_preference_file(pairs) == "preference"
    assert is_preference_file(tmp_path / "missing.jsonl") is None


def test_csv_pairs_read_like_jsonl(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,chosen,rejected\nq1,a1,b1\nq2,a2,\n", encoding="utf-8")
    data = read_preference(path)
    assert data.rows[0]["chosen"] == [{"role": "assistant", "content": "a1"}]
    assert data.errors[0]["line"] == 3 and "rejected" in data.errors[0]["message"]


def test_encode_reply_splits_where_the_rendered_prompt_ends(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    prompt_ids, reply_ids = encode_reply(tok, U, [{"role": "assistant", "content": GOOD}])
    assert tok.decode(prompt_ids).endswith("<start_of_turn>model\n")
    assert tok.decode(reply_ids) == GOOD + "<end_of_turn>\n"
    tok.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        encode_reply(tok, U, [{"role": "assistant", "content": GOOD}])
