"""Retrieval without a question list: number/unit tokens, the bilingual glossary, heading weight,
and index versioning (a snapshot from another tokenizer is rebuilt, never searched)."""

from __future__ import annotations

import pytest

from knowledge import bm25_index
from tunepilot.core import language as lang


@pytest.mark.parametrize("text, expected", [
    ("24G 显存", {"24gb", "24"}),
    ("a 24 GB card", {"24gb", "24"}),
    ("1,024 px", {"1024", "1024px"}),
    ("1024px", {"1024px", "1024"}),
    ("约 17.1G 的显存", {"17.1gb", "17.1"}),
    ("lr 0.0001", {"0.0001", "1e-4"}),
    ("2e-4", {"2e-4"}),
])
def test_numbers_and_units_meet_in_one_token(text, expected):
    assert expected <= set(lang.tokenize(text))


def test_spellings_of_one_number_match_each_other():
    assert set(lang.tokenize("24G")) & set(lang.tokenize("24 GB")) >= {"24gb"}
    assert "1e-4" in set(lang.tokenize("0.0001")) & set(lang.tokenize("1e-4"))
    assert "17" not in lang.tokenize("17.1GB")  # a decimal stays one number


def test_glossary_expands_both_ways():
    assert {"learning rate", "vram"} <= set(lang.expansions("LoRA 的学习率和显存"))
    assert {"学习率", "轮"} <= set(lang.expansions("default learning rate and epochs"))
    assert "garbled" in lang.expansions("上传的测试集出现乱码")
    # Whole words only: "ranking" is not the LoRA "rank".
    assert "秩" not in lang.expansions("ranking the results")
    assert {"乱码", "garbled", "mojibake"} <= lang.term_spellings("乱码")


def test_glossary_lines_are_well_formed():
    for line in lang.GLOSSARY.strip().splitlines():
        zh, en = line.split("=", 1)
        assert lang.has_cjk(zh) and not lang.has_cjk(en), line
        assert all(t.strip() for t in zh.split(",") + en.split(",")), line


def test_heading_words_weigh_more_than_body_words():
    metas = [{"title": "Doc", "heading": "Warmup", "tags": ""}, {"title": "Doc", "heading": "Other", "tags": ""}]
    snap = bm25_index.build(["a", "b"], ["schedules and steps", "warmup is mentioned here once"], metas, "r1")
    ranked = snap.top(lang.tokenize("warmup"), 2)
    assert snap.ids[ranked[0][0]] == "a"


def test_expansion_tokens_count_at_their_weight():
    metas = [{"title": "", "heading": "", "tags": ""}] * 2
    snap = bm25_index.build(["en", "zh"], ["the learning rate sets the step", "学习率决定步长"], metas, "r1")
    own = lang.tokenize("学习率")
    extra = lang.tokenize(" ".join(lang.expansions("学习率")))
    assert snap.ids[snap.top(own, 2)[0][0]] == "zh"
    with_extra = snap.top(own, 2, extra=extra, extra_weight=0.3)
    assert {snap.ids[p] for p, _ in with_extra} == {"en", "zh"}


def test_snapshot_of_another_tokenizer_version_is_not_loaded(tmp_path, monkeypatch):
    metas = [{"title": "", "heading": "", "tags": ""}]
    snap = bm25_index.build(["a"], ["learning rate"], metas, "r1")
    path = tmp_path / "x.bm25.pkl"
    bm25_index.save(snap, path)
    assert bm25_index.load(path) is not None
    monkeypatch.setattr(bm25_index, "FORMAT", bm25_index.FORMAT + "-next")
    assert bm25_index.load(path) is None  # the caller rebuilds it from Chroma
    path.write_bytes(b"torn")
    assert bm25_index.load(path) is None


def test_hash_embedder_names_its_tokenizer():
    from knowledge.embeddings import HashEmbedder

    assert lang.TOKENIZER_VERSION in HashEmbedder(64).name


def test_dense_query_gets_english_spellings_for_chinese():
    from knowledge.retrieval import dense_query

    assert "learning rate" in dense_query("学习率设多少")
    assert dense_query("What learning rate?") == "What learning rate?"
