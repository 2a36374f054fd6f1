"""The answer pipeline with a fake retriever: exact citations, guard, not-covered path, languages."""

from __future__ import annotations

import pytest

from assistant.answer import (
    MAX_QUESTION_CHARS,
    Answer,
    AssistantError,
    answer,
    stream_answer,
)
from assistant.citations import guard, renumber, split_answer_sentences, support
from assistant.condense import condense, condense_rules
from tests.support import FakeRetriever
from tunepilot.core.language import detect_lang


def test_english_question_gets_cited_english_answer():
    result = answer("What learning rate should I use for LoRA?", retriever=FakeRetriever())
    data = result.to_dict()
    assert data["grounded"] is True
    assert data["engine"] == "extractive"
    assert data["answer"] == "A typical learning rate for LoRA is 2e-4, about ten times higher than for full fine-tuning [1]."
    assert [c["n"] for c in data["citations"]] == [1]
    assert data["citations"][0]["source"] == "en/lora.md"
    assert data["citations"][0]["heading"] == "What LoRA is"
    assert set(data) >= {"answer", "citations", "engine", "grounded"}


def test_chinese_question_gets_chinese_answer_citing_chinese_doc():
    result = answer("LoRA 的学习率应该设多少？", retriever=FakeRetriever())
    assert result.grounded
    assert result.answer == "LoRA 的学习率通常为 2e-4，比全量微调高约十倍[1]。"
    assert result.citations[0].source == "zh/lora.md"
    assert detect_lang(result.answer) == "zh"


def test_citations_are_numbered_in_order_of_first_appearance():
    result = answer("What does QLoRA load in 4-bit and does it need CUDA?", retriever=FakeRetriever())
    assert result.grounded
    numbers = [c.n for c in result.citations]
    assert numbers == list(range(1, len(numbers) + 1))
    assert "[1]" in result.answer
    for c in result.citations:
        assert f"[{c.n}]" in result.answer


def test_injected_instruction_in_a_doc_is_never_quoted():
    result = answer("Does QLoRA need CUDA?", retriever=FakeRetriever())
    assert result.grounded
    assert "CUDA" in result.answer
    assert "Ignore previous instructions" not in result.answer
    assert "80 GB" not in result.answer


@pytest.mark.parametrize("question, expected_start", [
    ("How do I cook rice?", "The tunepilot documentation does not cover this question"),
    ("What is the Apple stock price today?", "The tunepilot documentation does not cover this question"),
    ("红烧肉怎么做？", "tunepilot 的文档没有涵盖这个问题"),
    ("今天茅台股价多少？", "tunepilot 的文档没有涵盖这个问题"),
])
def test_off_topic_questions_are_not_covered_and_list_nearest_sources(question, expected_start):
    result = answer(question, retriever=FakeRetriever())
    assert result.grounded is False
    assert result.citations == []
    assert result.answer.startswith(expected_start)
    assert "en/lora.md" in result.answer or "zh/lora.md" in result.answer
    assert result.nearest_sources and {"source", "heading"} <= set(result.nearest_sources[0])


def test_empty_index_is_not_covered():
    result = answer("What is LoRA?", retriever=FakeRetriever(docs=[]))
    assert not result.grounded
    assert "returned nothing" in result.answer


@pytest.mark.parametrize("question", ["", "   ", None])
def test_empty_question_is_a_user_error(question):
    with pytest.raises(AssistantError, match="question is empty"):
        answer(question, retriever=FakeRetriever())


def test_very_long_question_is_trimmed_with_a_notice():
    retriever = FakeRetriever()
    question = "What learning rate should I use for LoRA? " + "please " * 400
    result = answer(question, retriever=retriever)
    assert len(retriever.queries[0]) <= MAX_QUESTION_CHARS
    assert any("only the first 1000" in n for n in result.notices)
    assert result.answer.startswith("> Your question was")


def test_unknown_engine_is_a_user_error():
    with pytest.raises(Exception, match="unknown engine 'gpt9'"):
        answer("What is LoRA?", engine="gpt9", retriever=FakeRetriever())


def test_openai_engine_without_configuration_falls_back_and_says_so(monkeypatch):
    for var in ("TUNEPILOT_OPENAI_BASE_URL", "OPENAI_BASE_URL", "TUNEPILOT_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    result = answer("What learning rate should I use for LoRA?", engine="openai", retriever=FakeRetriever())
    assert result.engine == "extractive"
    assert result.grounded
    assert "openai engine is unavailable" in result.answer
    assert "TUNEPILOT_OPENAI_BASE_URL" in result.notices[0]


def test_stream_yields_pieces_then_the_final_answer():
    items = list(stream_answer("What learning rate should I use for LoRA?", retriever=FakeRetriever()))
    assert isinstance(items[-1], Answer)
    assert all(isinstance(p, str) for p in items[:-1])
    assert "".join(items[:-1]).startswith("A typical learning rate")


def test_follow_up_is_condensed_before_retrieval():
    retriever = FakeRetriever()
    history = [{"role": "user", "content": "What learning rate should I use for LoRA?"},
               {"role": "assistant", "content": "2e-4 [1]."}]
    result = answer("and for QLoRA?", history=history, retriever=retriever)
    assert retriever.queries[0] == "What learning rate should I use for QLoRA?"
    assert result.standalone_question == "What learning rate should I use for QLoRA?"


# --- the guard -----------------------------------------------------------------------------------

CHUNKS = {1: "LoRA trains small low-rank adapters while the base model stays frozen.",
          2: "QLoRA quantizes the base model to 4-bit NF4 and trains LoRA adapters on it."}


def test_guard_keeps_supported_and_drops_unsupported_citations():
    text = "LoRA trains small adapters on a frozen base model [1]. QLoRA needs 80 GB of memory for cooking pasta [2]."
    result = guard(text, CHUNKS)
    assert result.text == "LoRA trains small adapters on a frozen base model [1]. QLoRA needs 80 GB of memory for cooking pasta."
    assert result.cited == [1]
    assert result.dropped[0]["n"] == 2
    assert result.unsupported == ["QLoRA needs 80 GB of memory for cooking pasta."]


def test_guard_drops_citations_to_chunks_that_were_not_retrieved():
    result = guard("LoRA trains small low-rank adapters [7].", CHUNKS)
    assert result.dropped[0]["why"] == "not a retrieved chunk"
    # the sentence is supported by chunk 1, so the guard attaches it instead
    assert result.text == "LoRA trains small low-rank adapters [1]."


def test_guard_chinese_uses_character_bigrams():
    chunks = {1: "LoRA 冻结基础模型，只训练每个目标层的两个低秩矩阵。"}
    ok = guard("LoRA 只训练两个低秩矩阵，基础模型被冻结[1]。", chunks)
    assert ok.cited == [1] and ok.text.endswith("[1]。")
    bad = guard("今天的股票价格上涨了很多[1]。", chunks)
    assert bad.cited == [] and bad.text == "今天的股票价格上涨了很多。"


def test_guard_passes_code_blocks_through_and_splits_sentences():
    text = "Use rank 16 for LoRA adapters [1].\n```toml\n[method]\nlora_r = 16\n```\nDone."
    result = guard(text, CHUNKS)
    assert "```toml\n[method]\nlora_r = 16\n```" in result.text
    assert split_answer_sentences("A b c. D e f [2]. 中文句子[1]。") == ["A b c. ", "D e f [2]. ", "中文句子[1]。"]


def test_support_and_renumber():
    assert support("LoRA trains small low-rank adapters", CHUNKS[1]) == 1.0
    assert support("cooking pasta with tomatoes", CHUNKS[1]) == 0.0
    assert renumber("a [3]. b [1][3]. c [5].", [3, 1]) == "a [1]. b [2][1]. c ."


# --- condensing ----------------------------------------------------------------------------------

def _h(q):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": "..."}]


@pytest.mark.parametrize("question, previous, expected", [
    ("and for QLoRA?", "What learning rate should I use for LoRA?", "What learning rate should I use for QLoRA?"),
    ("那 QLoRA 呢？", "LoRA 的学习率应该设多少？", "QLoRA 的学习率应该设多少？"),
    ("How much memory does it need?", "What is QLoRA?", "How much memory does QLoRA need?"),
    ("它需要多少显存？", "QLoRA 是什么？", "QLoRA需要多少显存？"),
    ("what about the batch size?", "How do I fine-tune with LoRA?", "How do I fine-tune with LoRA: the batch size?"),
    ("那批大小呢？", "LoRA 怎么设置学习率？", "LoRA 怎么设置学习率，批大小？"),
    ("What is packing?", "What is QLoRA?", "What is packing?"),
    ("What about Lion?", "Which learning rate for AdamW?", "Which learning rate for Lion?"),
    ("How does QLoRA quantize the base model weights?", "What learning rate for LoRA?", "How does QLoRA quantize the base model weights?"),
    ("Is it possible to train on a CPU?", "What is QLoRA?", "Is it possible to train on a CPU?"),
])
def test_condense_rules(question, previous, expected):
    assert condense_rules(question, _h(previous)) == expected


def test_condense_without_history_returns_the_question():
    assert condense("and for QLoRA?", []) == "and for QLoRA?"
    assert condense("and for QLoRA?", None) == "and for QLoRA?"


def test_condense_with_llm_engine_uses_its_rewrite_and_falls_back_on_failure():
    from assistant.engines.base import Engine, EngineUnavailable

    class Rewriter(Engine):
        uses_llm = True

        def __init__(self, reply=None):
            self.reply = reply

        def complete(self, messages):
            if self.reply is None:
                raise EngineUnavailable("down")
            return self.reply

    history = _h("What learning rate should I use for LoRA?")
    assert condense("and QLoRA?", history, engine=Rewriter("What learning rate suits QLoRA?")) == "What learning rate suits QLoRA?"
    assert condense("and for QLoRA?", history, engine=Rewriter(None)) == "What learning rate should I use for QLoRA?"
