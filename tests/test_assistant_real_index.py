"""The assistant through the real knowledge index: Chroma + MiniLM + BM25 over shipped docs.

A module-wide workspace indexes a slice of the shipped corpus (en + zh) once; the slow test runs
the default collection, which indexes the whole shipped corpus on first use.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from assistant.answer import answer
from tunepilot.core.language import detect_lang

pytestmark = pytest.mark.integration

TOPICS = ("lora.md", "qlora.md", "hyperparameters.md", "optimizers.md")


@pytest.fixture(scope="module")
def indexed_home(tmp_path_factory):
    import os

    from knowledge import docs_path
    from knowledge.ingest import ingest

    home = tmp_path_factory.mktemp("assistant-index-home")
    corpus = tmp_path_factory.mktemp("corpus")
    for lang in ("en", "zh"):
        (corpus / lang).mkdir()
        for topic in TOPICS:
            shutil.copy(docs_path() / lang / topic, corpus / lang / topic)
    old = os.environ.get("TUNEPILOT_HOME")
    os.environ["TUNEPILOT_HOME"] = str(home)
    try:
        ingest([corpus], collection="asst", progress=False)
    finally:
        if old is None:
            os.environ.pop("TUNEPILOT_HOME", None)
        else:
            os.environ["TUNEPILOT_HOME"] = old
    return home


@pytest.fixture
def real_index(indexed_home, monkeypatch):
    monkeypatch.setenv("TUNEPILOT_HOME", str(indexed_home))
    return indexed_home


def test_english_question_is_grounded_in_a_real_doc(real_index):
    result = answer("What learning rate should I use for LoRA?", collection="asst")
    assert result.grounded, result.answer
    assert result.citations and all(c.source.startswith("en/") for c in result.citations)
    assert any(c.source == "en/lora.md" for c in result.citations)
    assert "2e-4" in result.answer
    for c in result.citations:
        assert f"[{c.n}]" in result.answer
        assert c.text  # the cited chunk travels with the citation


def test_chinese_question_is_answered_in_chinese_from_chinese_docs(real_index):
    result = answer("QLoRA 是什么？", collection="asst")
    assert result.grounded, result.answer
    assert detect_lang(result.answer) == "zh"
    assert all(c.source.startswith("zh/") for c in result.citations)
    assert any(c.source == "zh/qlora.md" for c in result.citations)


@pytest.mark.parametrize("question", ["How do I cook rice?", "What is the capital of France?",
                                      "Who won the 2018 World Cup?", "今天茅台的股价是多少？", "红烧肉怎么做？"])
def test_off_topic_questions_are_not_grounded(real_index, question):
    result = answer(question, collection="asst")
    assert not result.grounded, result.answer
    assert result.citations == []
    assert result.nearest_sources


def test_follow_up_through_the_real_index(real_index):
    history = [{"role": "user", "content": "What learning rate should I use for LoRA?"},
               {"role": "assistant", "content": "About 2e-4 [1]."}]
    result = answer("and for full fine-tuning?", history=history, collection="asst")
    assert result.standalone_question == "What learning rate should I use for full fine-tuning?"
    assert result.grounded


def test_ask_cli_json_shape(real_index):
    from tunepilot.cli.main import app

    out = CliRunner().invoke(app, ["ask", "Which optimizer uses the least memory?", "--collection", "asst", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert {"answer", "citations", "engine", "grounded"} <= set(data)
    assert data["engine"] == "extractive"
    for c in data["citations"]:
        assert set(c) == {"n", "source", "heading", "text"}


def test_ask_cli_unknown_collection_is_a_one_line_error(real_index):
    from tunepilot.cli.main import app

    out = CliRunner().invoke(app, ["ask", "What is LoRA?", "--collection", "Bad Name!", "--json"])
    assert out.exit_code == 2
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_default_collection_over_the_whole_shipped_corpus():
    en = answer("How do I fix CUDA out of memory during fine-tuning?")
    assert en.grounded and en.citations
    zh = answer("LoRA 的学习率应该设多少？")
    assert zh.grounded and detect_lang(zh.answer) == "zh" and zh.citations[0].source.startswith("zh/")
    off = answer("What is the weather in Paris today?")
    assert not off.grounded
