"""tunepilot.core.tables: JSON / JSONL / CSV / TSV rows with line numbers, problems as data, one decoder."""

from __future__ import annotations

import json

import pytest

from tunepilot.core import tables


def test_jsonl_rows_keep_their_lines_and_bad_lines_become_problems():
    text = '{"a": 1}\n\n{"a": 2\n"text"\n{"a": 3}\n'
    rows = tables.parse_jsonl(text)
    assert [r.line for r in rows] == [1, 3, 4, 5]
    assert rows[0].data == {"a": 1} and rows[3].data == {"a": 3}
    bad_json, not_object = rows[1].problem, rows[2].problem
    assert bad_json.kind == "invalid_json" and bad_json.line == 3 and bad_json.column == 8
    assert rows[1].error == f"invalid JSON ({bad_json.detail} at column 8)"
    assert not_object.kind == "not_object" and not_object.found == "str"
    assert rows[2].error == "expected a JSON object, got str"


def test_json_array_rows_start_on_their_own_line():
    text = '[\n  {"a": 1},\n  "oops",\n  {"a": 2,\n   "b": 3}\n]\n'
    rows, single = tables.parse_json(text)
    assert not single
    assert [(r.line, r.data) for r in rows] == [(2, {"a": 1}), (3, None), (4, {"a": 2, "b": 3})]
    assert rows[1].problem.kind == "not_object" and rows[1].problem.index == 2


def test_json_syntax_error_stops_reading_and_an_unclosed_array_is_named():
    rows, _ = tables.parse_json('[{"a": 1},\n {"a": }, {"a": 3}]')
    assert rows[0].data == {"a": 1}
    assert rows[1].problem.line == 2 and rows[1].problem.stops_reading
    assert rows[1].error.endswith("; rows after it were not read")
    rows, _ = tables.parse_json('[{"a": 1},')
    assert rows[-1].error == "invalid JSON (the array is not closed with ']')"


def test_json_single_object_and_scalar():
    rows, single = tables.parse_json('{"rows": [1]}')
    assert single and rows[0].data == {"rows": [1]}
    rows, single = tables.parse_json('"just text"')
    assert not single and rows[0].problem.kind == "not_table" and rows[0].problem.found == "str"


def test_json_vs_json_lines_is_decided_by_content():
    lines = '{"a": 1}\n{"a": 2}\n'
    assert tables.parse_table(lines, "json").format == "jsonl"
    assert [r.data for r in tables.parse_table(lines, "json").rows] == [{"a": 1}, {"a": 2}]
    array = json.dumps([{"a": 1}, {"a": 2}], indent=2)
    assert tables.parse_table(array, "jsonl").format == "json"
    # A pretty-printed object with a syntax error stays JSON, so the error has its line and column.
    broken = tables.parse_table('{\n  "a": 1,\n}\n', "json")
    assert broken.format == "json" and broken.first_problem.line == 3
    # One object on one line in a .jsonl file is a row, not a container of rows.
    one = tables.parse_table('{"messages": [{"role": "user", "content": "hi"}]}', "jsonl")
    assert one.format == "jsonl" and not one.single_object


def test_csv_header_lines_quoted_newlines_and_short_rows():
    text = ' q , a \n"first\nquestion",one\n\nsecond,two\nthird\n'
    columns, rows = tables.parse_csv(text)
    assert columns == ["q", "a"]
    assert [r.line for r in rows] == [2, 5, 6]  # the quoted newline spans lines 2-3; line 4 is blank
    assert rows[0].data == {"q": "first\nquestion", "a": "one"}
    assert rows[2].data == {"q": "third", "a": ""}
    _, rows = tables.parse_csv("q,a\nthird\n", missing=None)
    assert rows[0].data == {"q": "third", "a": None}


def test_csv_extra_values_and_trailing_empty_cells():
    columns, rows = tables.parse_csv("q,a\nhello, world,x\nok,fine,,\n")
    problem = rows[0].problem
    assert problem.kind == "extra_values" and problem.line == 2 and (problem.found, problem.expected) == (3, 2)
    assert rows[0].error == "1 more value(s) than the 2 header columns"
    assert rows[1].data == {"q": "ok", "a": "fine"}  # empty cells after the last column are not values


def test_csv_columns_without_a_name_are_dropped_and_no_header_is_none():
    columns, rows = tables.parse_csv("q,,a\n1,x,2\n")
    assert columns == ["q", "", "a"] and rows[0].data == {"q": "1", "a": "2"}
    assert tables.parse_csv("") == (None, [])


def test_delimiters_sniffed_and_tsv():
    assert tables.parse_table("q;a\n1;2\n", "csv").rows[0].data == {"q": "1", "a": "2"}
    assert tables.parse_table("q,a\n1,2\n", "csv", delimiter=",").rows[0].data == {"q": "1", "a": "2"}
    table = tables.parse_table("q\ta\n1,5\t2\n", "tsv")
    assert table.format == "tsv" and table.rows[0].data == {"q": "1,5", "a": "2"}


def test_text_without_a_known_extension_is_sniffed():
    def kind(text: str) -> str:
        return tables.parse_table(text, tables.sniff_format(text)).format

    assert kind('{"a": 1}\n{"a": 2}\n') == "jsonl"
    assert kind('[{"a": 1}]') == "json"
    assert kind("q,a\n1,2\n") == "csv"
    assert tables.sniff_format("no structure here") is None


def test_unknown_format():
    with pytest.raises(tables.TableError, match="unknown table format"):
        tables.parse_table("x", "xlsx")


def test_training_and_eval_readers_agree_on_one_file(tmp_path):
    """The reason for one reader: a GBK CSV with a quoted newline trains and evaluates the same rows."""
    from evals.datasets import load_dataset
    from trainer.data.formats import read_rows

    path = tmp_path / "qa.csv"
    path.write_bytes('prompt,completion\n"多行\n问题",答案一\n第二,答案二\n'.encode("gbk"))
    rows, encoding, kind = read_rows(path)
    evalset = load_dataset(path)
    assert encoding == evalset.encoding == "gbk" and kind == "csv"
    assert [r.data for r in rows] == evalset.rows
