"""Feedback on chat answers: the workspace store, the export to a RAG eval set, and `tunepilot feedback`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from assistant import feedback
from evals import rag

CITED = {"answer": "Use about 2e-4 [1].", "grounded": True, "engine": "extractive",
         "citations": [{"n": 1, "source": "en/lora.md", "heading": "Learning rate for LoRA", "text": "2e-4 ..."}]}
LIBRARY = {"answer": "It defaults to 8 [1].", "grounded": True, "engine": "extractive",
           "citations": [{"n": 1, "source": "library/peft==0.21.2/LoraConfig.md",
                          "heading": "peft 0.21.2 LoraConfig.lora_alpha", "text": "defaults to `8`"}]}
DECLINED = {"answer": "The docs do not cover this.", "grounded": False, "engine": "extractive", "citations": []}


def fill_store():
    feedback.record("What learning rate for LoRA?", CITED, rating="up")
    feedback.record("Default lora_alpha?", LIBRARY, rating="down", correction="lora_alpha defaults to 8 (peft)")
    feedback.record("How do I cook rice?", DECLINED, rating="up")
    feedback.record("How much VRAM at 1024 px?", DECLINED, rating="down")
    feedback.record("What is QLoRA?", CITED)  # no verdict
    feedback.record("Which optimizer?", CITED, rating="down")  # wrong, but no correction


def test_round_trip_and_update_in_place():
    entry = feedback.record("What learning rate for LoRA?", CITED)
    assert entry["rating"] is None and entry["citations"][0] == {"n": 1, "source": "en/lora.md", "heading": "Learning rate for LoRA"}
    feedback.record("ignored on update", {}, rating="up", correction=" 2e-4 ", entry_id=entry["id"])
    [stored] = feedback.list_entries()
    assert stored["id"] == entry["id"] and stored["question"] == "What learning rate for LoRA?"
    assert stored["rating"] == "up" and stored["correction"] == "2e-4" and stored["grounded"]
    assert feedback.store_path().read_text(encoding="utf-8").count("\n") == 1  # one line per answer


def test_export_maps_each_kind_of_feedback():
    fill_store()
    rows, skipped = feedback.eval_rows()
    by_q = {r["question"]: r for r in rows}
    assert by_q["What learning rate for LoRA?"]["expected_source"] == ["en/lora.md"]
    assert by_q["Default lora_alpha?"]["expected_fact"] == feedback.fact_pattern("lora_alpha defaults to 8 (peft)")
    assert "expected_source" not in by_q["Default lora_alpha?"]  # a thumbs down: its citation is no evidence
    assert by_q["How do I cook rice?"]["should_decline"] is True
    assert by_q["How much VRAM at 1024 px?"]["should_decline"] is False
    reasons = {s["question"]: s["reason"] for s in skipped}
    assert reasons == {"What is QLoRA?": "no verdict yet",
                       "Which optimizer?": "thumbs down without a correction: nothing to expect"}


def test_the_latest_verdict_on_a_question_wins():
    feedback.record("How do I cook rice?", DECLINED, rating="down")
    feedback.record("how do I cook  rice?", DECLINED, rating="up")
    rows, skipped = feedback.eval_rows()
    assert [r["should_decline"] for r in rows] == [True]
    assert skipped[0]["reason"].startswith("superseded")


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_exported_file_is_read_by_eval_rag(tmp_path, suffix):
    fill_store()
    out = feedback.export_eval_set(tmp_path / f"set{suffix}")
    qs = rag.load_questions(out["out"])
    assert len(qs.questions) == out["count"] == 4 and not qs.notices
    by_q = {q.question: q for q in qs.questions}
    assert by_q["What learning rate for LoRA?"].expected_source == ["en/lora.md"]
    assert rag.contains_fact("In peft, lora_alpha defaults to 8 (peft) [1].", by_q["Default lora_alpha?"].expected_fact)
    assert by_q["How do I cook rice?"].should_decline and not by_q["How much VRAM at 1024 px?"].should_decline


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(feedback.FeedbackError, match="rating 'meh'"):
        feedback.record("q", CITED, rating="meh")
    with pytest.raises(feedback.FeedbackError, match="question is empty"):
        feedback.record("  ", CITED)
    with pytest.raises(feedback.FeedbackError, match=".jsonl, .json or .csv"):
        feedback.export_eval_set(tmp_path / "set.xlsx")
    feedback.record("q", CITED)
    with feedback.store_path().open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    with pytest.raises(feedback.FeedbackError, match="line 2"):
        feedback.list_entries()


def test_feedback_cli_json_outputs_parse(tmp_path):
    from tunepilot.cli.main import app

    fill_store()
    runner = CliRunner()
    listed = runner.invoke(app, ["feedback", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert data["counts"] == {"entries": 6, "up": 2, "down": 3, "corrections": 1, "declined": 2}
    assert data["entries"][0]["question"] == "Which optimizer?"  # newest first
    only = json.loads(runner.invoke(app, ["feedback", "list", "--declined", "--json"]).stdout)
    assert {e["question"] for e in only["entries"]} == {"How do I cook rice?", "How much VRAM at 1024 px?"}

    target = tmp_path / "fb.jsonl"
    exported = runner.invoke(app, ["feedback", "export", "--out", str(target), "--json"])
    assert exported.exit_code == 0, exported.output
    result = json.loads(exported.stdout)
    assert result["count"] == 4 and result["out"] == str(target) and len(result["skipped"]) == 2
    assert len(target.read_text(encoding="utf-8").splitlines()) == 4

    bad = runner.invoke(app, ["feedback", "export", "--out", str(tmp_path / "x.txt"), "--json"])
    assert bad.exit_code == 2 and bad.stdout == "" and bad.stderr.startswith("error: ")


def test_feedback_list_human_output():
    from tunepilot.cli.main import app

    out = CliRunner().invoke(app, ["feedback", "list"])
    assert out.exit_code == 0 and "no feedback yet" in out.stdout
    fill_store()
    out = CliRunner().invoke(app, ["feedback", "list"])
    assert "6 entries: 2 up, 3 down, 1 corrections, 2 declined" in out.stdout
