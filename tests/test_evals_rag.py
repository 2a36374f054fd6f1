"""RAG self-evaluation: the question format, the metrics on a hand-made set with a fake searcher, and `eval rag`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from evals import rag
from evals.errors import EvalError
from tests.support import write_jsonl

PASSAGES = {
    "en/x.md": "Batch size trades memory for speed.",
    "en/lora.md": "A typical learning rate for LoRA is 2e-4.",
    "zh/lora.md": "LoRA 的秩 r 常用 8 到 64。",
}


def fake_search(results: dict):
    def search(question, k):
        return [{"source": s, "text": PASSAGES[s], "heading": "", "rank": i + 1}
                for i, s in enumerate(results.get(question, []))][:k]
    return search


def fake_answer(replies: dict):
    def answer(question):
        return replies[question]
    return answer


def cited(text, source):
    return {"answer": text, "grounded": True, "engine": "fake",
            "citations": [{"n": 1, "source": source, "heading": "", "text": PASSAGES[source]}]}


DECLINED = {"answer": "The docs do not cover this.", "grounded": False, "engine": "fake", "citations": []}

ROWS = [
    {"question": "LoRA learning rate?", "expected_source": "en/lora.md", "expected_fact": "2e-?4"},
    {"question": "LoRA 的秩？", "expected_source": "zh/lora.md", "expected_fact": "8 到 64"},
    {"question": "How do I cook rice?", "should_decline": True},
    {"question": "What batch size?", "should_decline": "false"},
    {"question": "Stock price of Moutai?", "should_decline": "yes"},
]
SEARCH = {"LoRA learning rate?": ["en/x.md", "en/lora.md"], "LoRA 的秩？": ["en/x.md"],
          "How do I cook rice?": ["en/x.md"], "What batch size?": ["en/x.md"], "Stock price of Moutai?": []}
REPLIES = {"LoRA learning rate?": cited("Use about 2e-4 [1].", "en/lora.md"), "LoRA 的秩？": DECLINED,
           "How do I cook rice?": DECLINED, "What batch size?": DECLINED,
           "Stock price of Moutai?": cited("Batch size trades memory for speed [1].", "en/x.md")}


def test_metrics_on_a_hand_made_set():
    qs = rag.parse_questions(ROWS, ["question", "expected_source", "expected_fact", "should_decline"])
    result = rag.evaluate(qs, fake_search(SEARCH), fake_answer(REPLIES), k=5)
    m = result["metrics"]
    # Two questions name a source: found at rank 2, and not at all.
    assert m["hit_at_k"] == 0.5 and m["mrr"] == 0.25
    # Two name a fact: the first is stated and cited, the second was declined.
    assert m["fact_in_passages"] == 0.5 and m["answer_contains_fact"] == 0.5 and m["citation_support"] == 0.5
    # Declined: the zh question, rice and batch size; only rice should have been. Should decline: rice, Moutai.
    assert m["decline_precision"] == round(1 / 3, 4) and m["decline_recall"] == 0.5
    assert result["support"] == {"hit_at_k": 2, "mrr": 2, "fact_in_passages": 2, "answer_contains_fact": 2,
                                 "citation_support": 2, "decline_precision": 3, "decline_recall": 2}
    first = result["rows"][0]
    assert first["rank"] == 2 and first["hit"] and first["reciprocal_rank"] == 0.5 and first["citation_support"]
    assert result["counts"] == {"questions": 5, "with_source": 2, "with_fact": 2, "should_decline": 2, "errors": 0}


def test_k_limits_the_ranks_counted():
    qs = rag.parse_questions(ROWS[:1], ["question", "expected_source", "expected_fact"])
    result = rag.evaluate(qs, fake_search(SEARCH), fake_answer(REPLIES), k=1)
    assert result["metrics"]["hit_at_k"] == 0.0 and result["rows"][0]["rank"] is None


def test_an_answer_that_states_the_fact_but_cites_another_passage_is_not_supported():
    qs = rag.parse_questions([{"question": "q", "expected_fact": "2e-4"}], ["question", "expected_fact"])
    reply = {"answer": "Use 2e-4 [1].", "grounded": True, "citations": [{"n": 1, "source": "en/x.md", "text": PASSAGES["en/x.md"]}]}
    result = rag.evaluate(qs, fake_search({}), lambda q: reply)
    assert result["metrics"]["answer_contains_fact"] == 1.0 and result["metrics"]["citation_support"] == 0.0


def test_empty_subsets_give_none_not_zero():
    qs = rag.parse_questions([{"question": "What batch size?"}], ["question"])
    result = rag.evaluate(qs, fake_search(SEARCH), fake_answer(REPLIES))
    assert result["metrics"]["hit_at_k"] is None and result["metrics"]["decline_recall"] is None
    assert result["metrics"]["decline_precision"] == 0.0  # it declined a question it should have answered


def test_sources_match_exactly_or_by_glob_and_facts_ignore_citation_markers():
    assert rag.source_matches("library/peft==0.21.2/LoraConfig.md", ["library/peft==*/LoraConfig.md"])
    assert not rag.source_matches("en/lora.md", ["zh/lora.md"])
    assert rag.contains_fact("the default is 2e-4 [1].", ["default is 2e-4\\."])
    assert rag.contains_fact("LoRA\nrank", ["lora rank"])


def test_reading_aliases_lists_and_carried_columns(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("问题,source,fact,should_decline,id,comment\n"
                    "LoRA 学习率？,zh/lora.md|en/lora.md,2e-4,,q1,mine\n"
                    "How do I cook rice?,,,TRUE,q2,\n", encoding="gbk")
    qs = rag.load_questions(path)
    assert [q.question for q in qs.questions] == ["LoRA 学习率？", "How do I cook rice?"]
    assert qs.questions[0].expected_source == ["zh/lora.md", "en/lora.md"] and qs.questions[0].extra == {"id": "q1"}
    assert qs.questions[1].should_decline and not qs.questions[0].should_decline
    assert any("comment" in n for n in qs.notices), qs.notices  # the column it does not use is named


@pytest.mark.parametrize("row, needle", [
    ({"question": "q", "expected_fact": "(unclosed"}, "row 1: expected_fact"),
    ({"question": "q", "should_decline": "maybe"}, "row 1: should_decline is 'maybe'"),
    ({"question": "  "}, "row 1"),
])
def test_bad_rows_are_one_error_naming_the_row(row, needle):
    with pytest.raises(EvalError) as err:
        rag.parse_questions([row], list(row))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_file_without_a_question_column_names_the_columns(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "x"}])
    with pytest.raises(EvalError, match="no question column .*prompt"):
        rag.load_questions(path)


def test_user_errors_of_one_question_are_recorded_not_fatal():
    from tunepilot.core.errors import UserError

    def search(q, k):
        raise UserError("the index is busy")

    qs = rag.parse_questions([{"question": "q", "expected_source": "en/x.md"}], ["question", "expected_source"])
    result = rag.evaluate(qs, search, fake_answer({}))
    assert result["counts"]["errors"] == 1 and result["rows"][0]["error"] == "the index is busy"
    assert result["metrics"]["hit_at_k"] is None


def test_saved_result_is_the_latest():
    assert rag.latest_result() is None
    qs = rag.parse_questions(ROWS, ["question", "expected_source", "expected_fact", "should_decline"])
    result = rag.evaluate(qs, fake_search(SEARCH), fake_answer(REPLIES))
    path = rag.save_result(result)
    latest = rag.latest_result()
    assert latest["metrics"] == result["metrics"] and latest["saved_as"] == str(path) and path.exists()


# ---------------------------------------------------------------- the CLI (fake retriever; the real one is in test_evals_rag_real)

@pytest.fixture
def fake_product(monkeypatch):
    from assistant import rag_eval

    search = fake_search(SEARCH)
    answer = fake_answer(REPLIES)

    class FakeAnswer:
        def __init__(self, data):
            self.data = data

        def to_dict(self):
            return self.data

    monkeypatch.setattr(rag_eval, "search", lambda q, k, collection: search(q, k))
    monkeypatch.setattr(rag_eval, "answer", lambda q, **kw: FakeAnswer(answer(q)))


def test_eval_rag_json_is_one_document(tmp_path, fake_product):
    from tunepilot.cli.main import app

    path = write_jsonl(tmp_path / "q.jsonl", ROWS)
    out = CliRunner().invoke(app, ["eval", "rag", "--questions", str(path), "--k", "3", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["k"] == 3 and data["metrics"]["hit_at_k"] == 0.5 and len(data["rows"]) == 5
    assert rag.latest_result()["metrics"] == data["metrics"]


def test_eval_rag_table_without_json(tmp_path, fake_product):
    from tunepilot.cli.main import app

    path = write_jsonl(tmp_path / "q.jsonl", ROWS)
    out = CliRunner().invoke(app, ["eval", "rag", "--questions", str(path)])
    assert out.exit_code == 0, out.output
    assert "hit@5" in out.stdout and "decline recall" in out.stdout and "answered but should decline" in out.stdout


def test_eval_rag_bad_file_is_one_line_error(tmp_path, fake_product):
    from tunepilot.cli.main import app

    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "q", "expected_fact": "(bad"}])
    out = CliRunner().invoke(app, ["eval", "rag", "--questions", str(path), "--json"])
    assert out.exit_code == 2 and out.stdout == ""
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1


def test_header_rows_are_named_and_an_empty_source_list_means_decline(tmp_path):
    path = write_jsonl(tmp_path / "frozen.jsonl", [
        {"frozen": True, "note": "do not tune on this set"},
        {"q": "How do I cook rice?", "source": []},
        {"q": "What is LoRA?", "source": ["en/lora.md", "zh/lora.md"], "lang": "en"},
    ])
    qs = rag.load_questions(path)
    assert [q.question for q in qs.questions] == ["How do I cook rice?", "What is LoRA?"]
    assert qs.questions[0].should_decline and not qs.questions[1].should_decline
    assert qs.questions[1].expected_source == ["en/lora.md", "zh/lora.md"] and qs.questions[1].extra == {"lang": "en"}
    assert any("skipped row 1: no question (keys frozen, note)" in n for n in qs.notices), qs.notices
    assert any("count as should_decline (rows 2)" in n for n in qs.notices), qs.notices
