"""Datasets in every format and encoding, column/template errors, PromptLayer CSV import/export, eval config."""

from __future__ import annotations

import csv
import io
import json

import pytest

from evals import template
from evals.datasets import (
    export_promptlayer_csv,
    import_promptlayer_csv,
    load_dataset,
    require_columns,
)
from evals.errors import EvalError
from evals.spec import build_spec, parse_fail_under

ROWS = [
    {"question": "什么是 LoRA？", "answer": "低秩适配，在冻结的模型上训练小矩阵。"},
    {"question": "QLoRA 用几位量化？", "answer": "4 位 NF4"},
    {"question": "Hello, what is a learning rate?", "answer": "The step size, e.g. 2e-4."},
]


def csv_text(rows, delimiter=","):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@pytest.mark.parametrize("encoding, reported", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gbk"),
                                                ("gb18030", "gbk")])
def test_csv_in_every_encoding_reads_chinese_exactly(tmp_path, encoding, reported):
    path = tmp_path / "q.csv"
    path.write_bytes(csv_text(ROWS).encode(encoding))
    data = load_dataset(path)
    assert data.rows == ROWS
    assert data.columns == ["question", "answer"]
    assert data.encoding == reported  # GBK-compatible text is reported as GBK, the name users know


def test_gb18030_only_characters(tmp_path):
    rows = [{"q": "𠀀 是扩展字", "a": "€"}]  # outside GBK: needs GB18030
    path = tmp_path / "q.csv"
    path.write_bytes(csv_text(rows).encode("gb18030"))
    data = load_dataset(path)
    assert data.rows == rows and data.encoding == "gb18030"


def test_tsv_json_array_object_and_jsonl(tmp_path):
    (tmp_path / "q.tsv").write_text(csv_text(ROWS, delimiter="\t"), encoding="utf-8")
    assert load_dataset(tmp_path / "q.tsv").rows == ROWS
    (tmp_path / "a.json").write_text(json.dumps(ROWS, ensure_ascii=False), encoding="utf-8")
    assert load_dataset(tmp_path / "a.json").rows == ROWS
    (tmp_path / "o.json").write_text(json.dumps({"name": "qa", "rows": ROWS}, ensure_ascii=False), encoding="utf-8")
    assert load_dataset(tmp_path / "o.json").rows == ROWS
    (tmp_path / "other.json").write_text(json.dumps({"meta": 1, "questions": ROWS}, ensure_ascii=False), encoding="utf-8")
    assert load_dataset(tmp_path / "other.json").rows == ROWS
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS) + "\n\n", encoding="utf-8")
    data = load_dataset(tmp_path / "q.jsonl")
    assert data.rows == ROWS and data.format == "jsonl"
    (tmp_path / "array.jsonl").write_text(json.dumps(ROWS, ensure_ascii=False, indent=2), encoding="utf-8")
    assert load_dataset(tmp_path / "array.jsonl").rows == ROWS
    # GBK JSONL, no extension: sniffed.
    (tmp_path / "noext").write_bytes("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS).encode("gbk"))
    data = load_dataset(tmp_path / "noext")
    assert data.rows == ROWS and data.encoding == "gbk"


def test_chat_format_rows_get_input_expected_system(tmp_path):
    row = {"messages": [{"role": "system", "content": "你是小星"}, {"role": "user", "content": "你好"},
                        {"role": "assistant", "content": "你好！我是小星。"}]}
    (tmp_path / "chat.jsonl").write_text(json.dumps(row, ensure_ascii=False), encoding="utf-8")
    data = load_dataset(tmp_path / "chat.jsonl")
    assert data.rows[0]["input"] == "你好" and data.rows[0]["expected"] == "你好！我是小星。"
    assert data.rows[0]["system"] == "你是小星"


def test_empty_rows_are_skipped_and_an_empty_file_is_an_error(tmp_path):
    (tmp_path / "q.csv").write_text("question,answer\n,\nhi,there\n , \n", encoding="utf-8")
    data = load_dataset(tmp_path / "q.csv")
    assert data.rows == [{"question": "hi", "answer": "there"}] and data.skipped_empty_rows == 2
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(EvalError, match="is empty"):
        load_dataset(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("question,answer\n,\n", encoding="utf-8")
    with pytest.raises(EvalError, match="no rows with values"):
        load_dataset(tmp_path / "blank.csv")


def test_clear_errors_for_bad_files(tmp_path):
    with pytest.raises(EvalError, match="does not exist"):
        load_dataset(tmp_path / "missing.csv")
    (tmp_path / "bad.json").write_text('[{"a": 1},', encoding="utf-8")
    with pytest.raises(EvalError, match="not valid JSON"):
        load_dataset(tmp_path / "bad.json")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(EvalError, match="line 2 is not valid JSON"):
        load_dataset(tmp_path / "bad.jsonl")
    (tmp_path / "strings.json").write_text('["a", "b"]', encoding="utf-8")
    with pytest.raises(EvalError, match="row 1 is a JSON str"):
        load_dataset(tmp_path / "strings.json")
    (tmp_path / "ragged.csv").write_text("q,a\nhello, world,x\n", encoding="utf-8")
    with pytest.raises(EvalError, match="line 2 has 3 fields"):
        load_dataset(tmp_path / "ragged.csv")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02 plain words without structure")
    with pytest.raises(EvalError):
        load_dataset(tmp_path / "blob.bin")


def test_errors_name_the_physical_line_and_json_lines_in_a_json_file_are_read(tmp_path):
    # The shared table reader counts lines, not records: a quoted newline moves the next row down.
    (tmp_path / "multi.csv").write_text('q,a\n"two\nlines",x\nhello,world,x\n', encoding="utf-8")
    with pytest.raises(EvalError, match="line 4 has 3 fields but the header names 2"):
        load_dataset(tmp_path / "multi.csv")
    (tmp_path / "lines.json").write_text('{"q": "a"}\n{"q": "b"}\n', encoding="utf-8")
    assert load_dataset(tmp_path / "lines.json").rows == [{"q": "a"}, {"q": "b"}]
    (tmp_path / "dupes.csv").write_text("q,q\n1,2\n", encoding="utf-8")
    with pytest.raises(EvalError, match="repeats column name"):
        load_dataset(tmp_path / "dupes.csv")


def test_missing_columns_are_named_with_the_columns_found(tmp_path):
    (tmp_path / "q.csv").write_text(csv_text(ROWS), encoding="utf-8")
    data = load_dataset(tmp_path / "q.csv")
    with pytest.raises(EvalError) as err:
        require_columns(data, {"prompt": "input", "gold": "expected answer"})
    message = str(err.value)
    assert "'prompt' (input)" in message and "'gold' (expected answer)" in message
    assert "columns found: 'question', 'answer'" in message


def test_template_variables():
    assert template.variables("Q: {question}\nContext: {{ ctx }} {question}") == ["question", "ctx"]
    assert template.render("问：{question}", {"question": "什么是 LoRA？"}) == "问：什么是 LoRA？"
    # JSON literals are not variables.
    assert template.variables('Reply as {"answer": "..."} for {q}') == ["q"]
    assert template.render("{n} items: {xs}", {"n": 3, "xs": ["a", "中"]}) == '3 items: ["a", "中"]'
    with pytest.raises(EvalError, match=r"uses \{questoin\}.*columns found: 'question'"):
        template.check_variables("Q: {questoin}", ["question", "answer"])


def test_promptlayer_csv_export_then_import_round_trips_chinese(tmp_path):
    (tmp_path / "q.csv").write_bytes(csv_text(ROWS).encode("gbk"))
    data = load_dataset(tmp_path / "q.csv")
    out = export_promptlayer_csv(data, tmp_path / "pl.csv")
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM for Excel
    header = raw.decode("utf-8-sig").splitlines()[0]
    assert header == "question,expected_output"
    back = import_promptlayer_csv(out)
    assert [r["question"] for r in back.rows] == [r["question"] for r in ROWS]
    assert [r["expected_output"] for r in back.rows] == [r["answer"] for r in ROWS]


def test_promptlayer_import_maps_aliases_and_metadata(tmp_path):
    text = 'topic,ground_truth,metadata\nLoRA,低秩,"{""source"": ""文档"", ""level"": 2}"\n'
    (tmp_path / "pl.csv").write_text(text, encoding="utf-8")
    data = import_promptlayer_csv(tmp_path / "pl.csv")
    assert data.rows == [{"topic": "LoRA", "expected_output": "低秩", "metadata.source": "文档", "metadata.level": "2"}]


def test_eval_config_yaml_with_flag_overrides(tmp_path):
    (tmp_path / "q.csv").write_text(csv_text(ROWS), encoding="utf-8")
    (tmp_path / "eval.yaml").write_text(
        "dataset: q.csv\n"
        "template: '问题：{question}'\n"
        "providers:\n  - gemma-3-270m\n  - {id: 'openai:m', base_url: 'http://127.0.0.1:9/v1', label: api}\n"
        "generation: {max_new_tokens: 32}\n"
        "scorers:\n  - exact\n  - {name: rouge_l, weight: 2, threshold: 0.5}\n  - regex: {pattern: '\\d+'}\n"
        "fail_under: {rouge_l: 0.3}\n", encoding="utf-8")
    spec = build_spec(tmp_path / "eval.yaml", batch_size=4, fail_under={"exact": 0.1})
    assert spec.dataset == str(tmp_path / "q.csv")
    assert [p.name for p in spec.providers] == ["gemma-3-270m", "api"]
    assert spec.generation.max_new_tokens == 32 and spec.generation.batch_size == 4
    assert spec.generation.temperature == 0.0  # greedy by default
    assert [(s.name, s.weight, s.threshold) for s in spec.scorers] == [("exact", 1.0, None), ("rouge_l", 2.0, 0.5), ("regex", 1.0, None)]
    assert spec.scorers[2].params == {"pattern": "\\d+"}
    assert spec.fail_under == {"rouge_l": 0.3, "exact": 0.1}


def test_eval_config_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("dataset: [unclosed\n", encoding="utf-8")
    with pytest.raises(EvalError, match="not valid YAML"):
        build_spec(tmp_path / "bad.yaml")
    (tmp_path / "extra.yaml").write_text("dataset: q.csv\nmodels: [a]\ngeneraton: {}\n", encoding="utf-8")
    with pytest.raises(EvalError, match="generaton: unknown key"):
        build_spec(tmp_path / "extra.yaml")
    with pytest.raises(EvalError, match="No dataset given"):
        build_spec(models=["x"])
    with pytest.raises(EvalError, match="no models given"):
        build_spec(dataset="q.csv")
    assert parse_fail_under(["rouge_l=0.5", "exact@ft:a:b:c=1"]) == {"rouge_l": 0.5, "exact@ft:a:b:c": 1.0}
    with pytest.raises(EvalError, match="not SCORER=VALUE"):
        parse_fail_under(["rouge_l"])
    with pytest.raises(EvalError, match="is not a number"):
        parse_fail_under(["rouge_l=high"])
