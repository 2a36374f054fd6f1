"""Exact unit tests of the knowledge pipeline's pieces: tokenizer, decoding, cleaning, chunking, fusion."""

from __future__ import annotations

import codecs

import pytest

from knowledge import chunking, loaders
from knowledge.loaders import LoadError
from tunepilot.core import language as lang

# --------------------------------------------------------------------------- tokenizer / language


def test_tokenize_keeps_technical_tokens_and_their_parts():
    toks = lang.tokenize("Use lora_alpha with QLoRA at 2e-4 on an A100-80G; paged_adamw_8bit optimizers")
    for expected in ("lora_alpha", "lora", "alpha", "qlora", "2e-4", "a100-80g", "a100", "paged_adamw_8bit", "8bit", "optimizer"):
        assert expected in toks
    assert "2e" not in toks and "with" not in toks  # numbers stay whole; stopwords dropped


def test_tokenize_segments_chinese_with_domain_words():
    toks = lang.tokenize("LoRA 的学习率怎么设置？梯度累积和数据集去重")
    assert {"lora", "学习率", "梯度累积", "数据集", "去重"} <= set(toks)
    assert "的" not in toks and "怎么" not in toks


def test_detect_lang():
    assert lang.detect_lang("LoRA 冻结预训练权重，只训练一个很小的适配器。") == "zh"
    assert lang.detect_lang("LoRA freezes the base weights.") == "en"
    assert lang.detect_lang("LoRA rank 怎么选") == "zh"


# --------------------------------------------------------------------------- decoding


def test_decode_utf8_bom_and_gbk():
    text = "# 标题\n\n学习率通常设为 2e-4。\n"
    assert loaders.decode(text.encode("utf-8")) == (text, "utf-8")
    assert loaders.decode(codecs.BOM_UTF8 + text.encode("utf-8")) == (text, "utf-8-sig")
    decoded, enc = loaders.decode(text.encode("gbk"))
    assert decoded == text and enc == "gbk"
    short, _ = loaders.decode("LoRA 微调".encode("gbk"))  # short GBK is often guessed as Big5
    assert short == "LoRA 微调"
    assert loaders.decode("Grüße aus München, schöne Straße".encode("latin-1"))[0].startswith("Grüße")


def test_decode_rejects_binary():
    with pytest.raises(LoadError, match="binary"):
        loaders.decode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


# --------------------------------------------------------------------------- cleaning and conversion


def test_front_matter_comments_and_license_header_are_removed(tmp_path):
    src = tmp_path / "doc.md"
    src.write_text(
        "---\ntitle: My Doc\nlang: en\ntags: [a, b]\nsources: [\"Paper X\"]\n---\n"
        "<!-- Copyright 2024 ACME. Licensed under the Apache License 2.0 -->\n\n"
        "Copyright (c) 2024 ACME Corp. All rights reserved.\n\n"
        "# My Doc\n\nReal text. <!-- hidden note -->\n\n```html\n<!-- kept: code -->\n```\n",
        encoding="utf-8",
    )
    doc = loaders.load(src)
    body = doc.parts[0].page_content
    assert doc.title == "My Doc" and doc.lang == "en" and doc.tags == ["a", "b"] and doc.sources == ["Paper X"]
    assert "title:" not in body and "Copyright" not in body and "hidden note" not in body
    assert "Real text." in body and "<!-- kept: code -->" in body


def test_mdx_imports_are_removed(tmp_path):
    src = tmp_path / "page.mdx"
    src.write_text("import Tabs from '@theme/Tabs'\n\n# Page\n\n{/* note */}\nBody text.\n", encoding="utf-8")
    body = loaders.load(src).parts[0].page_content
    assert "import" not in body and "note" not in body and "Body text." in body


def test_rst_headings_code_and_comments():
    md = loaders.rst_to_markdown(
        ".. Copyright 2020 Someone, licensed under MIT\n\n"
        "=====\nGuide\n=====\n\nIntro with :func:`train` role.\n\n"
        "Install\n-------\n\nRun this::\n\n    pip install thing\n\n"
        ".. code-block:: python\n\n    x = 1\n\nUsage\n-------\n\nText.\n"
    )
    assert "# Guide" in md and "## Install" in md and "## Usage" in md
    assert "Copyright" not in md and "train role" in md.replace("`", "")
    assert "```\npip install thing\n```" in md and "```python\nx = 1\n```" in md


def test_rst_directive_bodies_are_kept_and_markup_directives_dropped():
    md = loaders.rst_to_markdown(
        ".. _target:\n\nTitle\n=====\n\n.. note:: Mind the gap.\n\n"
        ".. dropdown:: Usage\n    :open:\n\n    Call it like this::\n\n        run(x)\n\n    .. warning::\n\n       Nested text.\n\n"
        ".. toctree::\n   :maxdepth: 2\n\n   intro\n   api\n\n.. image:: pic.png\n\nAfter.\n"
    )
    assert "Mind the gap." in md and "Usage" in md and "Call it like this:" in md
    assert "```\nrun(x)\n```" in md and "Nested text." in md and "After." in md
    assert ":open:" not in md and "intro" not in md and "pic.png" not in md and "_target" not in md


def test_html_to_markdown_keeps_headings_and_code():
    title, md = loaders.html_to_markdown(
        "<html><head><title>T</title><style>p{}</style></head><body><nav>menu</nav>"
        "<h1>Top</h1><p>Para   one\nwraps.</p><!-- c --><h2>Sub</h2><ul><li>a</li><li>b</li></ul>"
        "<pre>x = 1\n  y = 2</pre><script>evil()</script></body></html>"
    )
    assert title == "T"
    assert "# Top" in md and "## Sub" in md and "Para one wraps." in md and "- a" in md
    assert "x = 1\n  y = 2" in md
    assert "menu" not in md and "evil" not in md and " c " not in md


# --------------------------------------------------------------------------- chunking


def _doc(markdown: str, kind: str = "markdown", title: str = "T", lang_: str | None = None) -> loaders.LoadedDoc:
    from langchain_core.documents import Document

    return loaders.LoadedDoc(kind=kind, title=title, parts=[Document(page_content=markdown)], lang=lang_)


def test_chunks_keep_heading_path_and_code_blocks():
    chunks = chunking.chunk(
        _doc("# Guide\n\nIntro.\n\n## Rank\n\nText.\n\n```python\n# not a heading\nr = 8\n```\n\n### Deep\n\nMore.\n\n## Alpha\n\nA.\n")
    )
    assert [(c.heading, c.index) for c in chunks] == [
        ("Guide", 0), ("Guide > Rank", 1), ("Guide > Rank > Deep", 2), ("Guide > Alpha", 3)
    ]
    assert "# not a heading" in chunks[1].text and chunks[1].text.startswith("Text.")


def test_long_chinese_section_splits_at_sentence_ends():
    sentence = "学习率决定每一步更新的幅度，过大时损失会震荡甚至变成 NaN。"
    chunks = chunking.chunk(_doc("## 学习率\n\n" + sentence * 60, lang_="zh"))
    assert len(chunks) > 1
    for c in chunks:
        assert c.text.endswith("。"), c.text[-10:]
        assert chunking.weighted_len(c.text) <= chunking.CHUNK_SIZE
        assert c.heading == "学习率" and c.lang == "zh"


def test_unclosed_fence_does_not_lose_text():
    chunks = chunking.chunk(_doc(loaders.close_open_fence("## A\n\nbefore\n\n```\ncode\n\n## B\n\nafter\n")))
    assert "after" in " ".join(c.text for c in chunks)


def test_heading_prefix_does_not_repeat_title():
    assert chunking.heading_prefix("LoRA", "LoRA > Rank") == "LoRA > Rank"
    assert chunking.heading_prefix("LoRA", "Rank") == "LoRA > Rank"
    assert chunking.heading_prefix("LoRA", "") == "LoRA"


# --------------------------------------------------------------------------- fusion


def test_reciprocal_rank_fusion_prefers_agreement():
    from knowledge.retrieval import RRF_K, _fuse

    fused = _fuse([([("a", 0.9), ("b", 0.8), ("c", 0.1)], 1.0), ([("b", 5.0), ("d", 4.0)], 1.0)])
    assert [cid for cid, _ in fused] == ["b", "a", "d", "c"]
    assert fused[0][1] == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))


def test_a_tiny_lead_in_joins_the_text_it_introduces():
    items = "\n".join(f"- item {i}: " + "word " * 30 for i in range(12))
    chunks = chunking.chunk(_doc("## Checks\n\nCheck these:\n\n" + items + "\n"))
    assert len(chunks) > 1
    assert all(chunking.weighted_len(c.text) >= chunking.MIN_CHUNK for c in chunks)
    assert chunks[0].text.startswith("Check these:\n\n- item 0")
