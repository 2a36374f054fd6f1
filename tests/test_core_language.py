"""One language module: the same zh/en verdict and the same words wherever a text is judged.

Retrieval (BM25 tokens, fusion weights), chunking (chunk language), the coverage gate, the
extractive engine and the citation guard all read `tunepilot.core.language`; these tests pin that
they agree, e.g. "LoRA 吗" is Chinese for retrieval and for the answer, and "梯度累积" is one word
for BM25 and for the coverage gate.
"""

from __future__ import annotations

import importlib.util

import pytest

from assistant import answer as answer_mod
from assistant import citations, condense, draft
from assistant.engines import extractive
from knowledge import bm25_index, chunking, retrieval
from knowledge.loaders import LoadedDoc
from tunepilot.core import language as lang

MIXED = [
    "LoRA 吗",
    "LoRA 的学习率怎么设置？梯度累积和数据集去重",
    "What LoRA rank should I use for Qwen2.5-7B with lora_alpha=32 and paged_adamw_8bit optimizers?",
    "QLoRA/LoRA adapters: training on an A100-80G at 2e-4, what's the model's memory?",
    "请问 QLoRA 的显存占用是多少？用 4-bit 量化之后梯度检查点还要开吗",
    "Please explain how gradient checkpointing trades compute for memory.",
]


def test_the_assistant_language_module_is_gone():
    assert importlib.util.find_spec("assistant.language") is None


@pytest.mark.parametrize("text, expected", [
    ("LoRA 吗", "zh"),
    ("LoRA 的学习率是多少", "zh"),
    ("LoRA rank 怎么选", "zh"),
    ("学习率", "zh"),
    ("What LoRA rank should I use?", "en"),
    ("The rank (秩, r) sets how many directions the adapter can learn in each layer.", "en"),
    ("", "en"),
])
def test_one_verdict_for_is_this_text_chinese(text, expected):
    assert lang.detect_lang(text) == expected


def test_every_caller_uses_the_one_verdict():
    for module in (retrieval, chunking, answer_mod, condense, draft, extractive):
        assert module.detect_lang is lang.detect_lang, module.__name__


def test_chunk_language_and_retrieval_weights_follow_the_verdict():
    undeclared = LoadedDoc(kind="markdown", title="", parts=[])
    for text in MIXED:
        assert chunking._lang(undeclared, text) == lang.detect_lang(text)
    assert retrieval.WEIGHTS[lang.detect_lang("LoRA 吗")] == retrieval.WEIGHTS["zh"]


def test_a_short_chinese_question_is_answered_in_chinese():
    def retriever(query, k=8, collection="default"):
        return [{"source": "zh/lora.md", "heading": "LoRA", "lang": "zh",
                 "text": "LoRA 冻结基础模型的权重，只训练两个很小的低秩矩阵。它比全量微调省显存。"}]

    result = answer_mod.answer("LoRA 吗", retriever=retriever)
    assert result.lang == "zh"
    assert result.grounded and lang.detect_lang(result.answer) == "zh"


def test_bm25_and_the_coverage_gate_share_one_segmentation():
    assert bm25_index.tokenize is lang.tokenize and retrieval.tokenize is lang.tokenize
    assert answer_mod.content_terms is lang.content_terms and extractive.content_terms is lang.content_terms
    assert citations.latin_terms is lang.latin_terms and extractive.latin_terms is lang.latin_terms
    text = "梯度累积和学习率怎么设置"
    assert "梯度累积" in lang.tokenize(text) and "梯度累积" in lang.content_terms(text)
    assert "学习率" in lang.tokenize(text) and "学习率" in lang.content_terms(text)


@pytest.mark.parametrize("text", MIXED)
def test_content_terms_are_bm25_tokens_of_the_same_text(text):
    tokens = lang.tokenize(text)
    stemmed = {lang._stem(t) for t in tokens}
    terms = lang.content_terms(text)
    assert terms, text
    for term in terms:
        if lang.has_cjk(term):
            assert term in tokens, (term, tokens)
        else:
            assert term in stemmed, (term, tokens)
    # The Chinese words of the one segmentation are whole BM25 tokens (search mode adds sub-words).
    for word in lang.words(text):
        if lang.has_cjk(word) and word not in lang.ZH_STOPWORDS:
            assert word in tokens


def test_content_terms_drop_question_words_and_stem_english():
    assert lang.content_terms("Please explain what LoRA adapters are") == ["lora", "adapter"]
    assert lang.content_terms("请问 LoRA 的学习率怎么设置") == ["lora", "学习率", "设置"]
    assert lang.latin_terms("training adapters") == lang.latin_terms("trains the adapter")
    assert lang.content_terms("LoRA/QLoRA") == ["lora", "qlora"]


def test_sentences_and_bigrams():
    assert lang.split_sentences("LoRA trains adapters. QLoRA adds 4-bit. 它更省显存。然后合并。") == [
        "LoRA trains adapters.", "QLoRA adds 4-bit.", "它更省显存。", "然后合并。"]
    assert lang.char_bigrams("低秩矩阵") == {"低秩", "秩矩", "矩阵"}
    assert lang.char_bigrams("秩 r") == {"秩"}
