"""The real pipeline: the offline MiniLM embedder, embedded Chroma, jieba BM25, on a small en + zh
corpus plus PDF, HTML and reStructuredText files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"

EN = [
    ("how much memory does full fine-tuning need per parameter", "en/memory.md"),
    ("what does gradient checkpointing cost", "en/memory.md"),
    ("which lora rank and alpha should I use", "en/lora.md"),
    ("merge adapter into base model", "en/lora.md"),
    ("remove duplicate examples and hold out validation data", "en/datasets.md"),
]
ZH = [
    ("全量微调每个参数要多少字节", "zh/memory.md"),
    ("梯度检查点的代价是什么", "zh/memory.md"),
    ("LoRA 的秩和 alpha 怎么选", "zh/lora.md"),
    ("怎么把适配器合并到基座模型", "zh/lora.md"),
    ("训练前怎么去重，验证集留多少", "zh/datasets.md"),
]


def make_pdf(lines: list[str]) -> bytes:
    """A minimal, valid one-page PDF whose text layer holds `lines` (Helvetica, ASCII)."""
    content = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({line}) Tj 0 -16 Td" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.fixture(scope="module")
def real_home(tmp_path_factory):
    """One workspace indexed once with the real embedder for the whole module."""
    home = tmp_path_factory.mktemp("real-home")
    corpus = tmp_path_factory.mktemp("real-corpus") / "docs"
    shutil.copytree(FIXTURES, corpus)
    (corpus / "en" / "paper.pdf").write_bytes(
        make_pdf(["Paged optimizers move optimizer state to CPU memory", "when the GPU runs out of memory during QLoRA training."])
    )
    (corpus / "en" / "schedulers.html").write_text(
        "<html><head><title>Schedulers</title></head><body><nav>Home | Docs</nav><h1>Learning rate schedulers</h1>"
        "<h2>Cosine with warmup</h2><p>A cosine schedule with a short linear warmup is the usual default for fine-tuning.</p>"
        "</body></html>",
        encoding="utf-8",
    )
    (corpus / "en" / "deepspeed.rst").write_text(
        ".. Copyright 2023 Someone. Licensed under the Apache License.\n\n"
        "DeepSpeed ZeRO\n==============\n\nStage 3\n-------\n\nZeRO stage 3 shards parameters, gradients and optimizer states across GPUs.\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNEPILOT_HOME", str(home))
        mp.delenv("TUNEPILOT_EMBEDDINGS", raising=False)
        from knowledge.ingest import ingest

        summary = ingest([corpus], collection="real", progress=False)
    return home, corpus, summary


@pytest.fixture
def in_real_home(real_home, monkeypatch):
    monkeypatch.setenv("TUNEPILOT_HOME", str(real_home[0]))
    monkeypatch.delenv("TUNEPILOT_EMBEDDINGS", raising=False)
    return real_home


def test_every_format_is_indexed(in_real_home):
    _, _, summary = in_real_home
    assert summary.skipped == []
    assert {"en/paper.pdf", "en/schedulers.html", "en/deepspeed.rst"} <= set(summary.added)
    from knowledge.retrieval import search

    pdf = search("paged optimizers CPU memory", k=1, collection="real")[0]
    assert pdf.source == "en/paper.pdf" and pdf.page == 1 and "Paged optimizers" in pdf.text
    html = search("cosine schedule warmup", k=1, collection="real")[0]
    assert html.source == "en/schedulers.html" and html.heading == "Learning rate schedulers > Cosine with warmup"
    assert "Home | Docs" not in html.text
    rst = search("ZeRO stage 3 shards", k=1, collection="real")[0]
    assert rst.source == "en/deepspeed.rst" and rst.heading == "DeepSpeed ZeRO > Stage 3" and "Copyright" not in rst.text


@pytest.mark.parametrize("query,expected", EN + ZH)
def test_hybrid_finds_the_expected_file(in_real_home, query, expected):
    from knowledge.retrieval import search

    hits = search(query, k=3, collection="real")
    assert expected in [h.source for h in hits], [(h.source, h.heading) for h in hits]


def test_hybrid_beats_dense_only_on_chinese(in_real_home):
    from knowledge.retrieval import search

    def mrr(mode: str) -> float:
        total = 0.0
        for query, expected in ZH:
            sources = [h.source for h in search(query, k=5, collection="real", mode=mode)]
            total += 1 / (sources.index(expected) + 1) if expected in sources else 0.0
        return total / len(ZH)

    dense, hybrid = mrr("dense"), mrr("hybrid")
    assert hybrid > dense and hybrid >= 0.9, (dense, hybrid)


def test_models_are_loaded_once(in_real_home):
    from knowledge import embeddings
    from knowledge.retrieval import search

    search("lora", collection="real")
    first = embeddings.get_embedder()
    search("显存", collection="real")
    assert embeddings.get_embedder() is first


def test_cross_encoder_rerank(in_real_home, tmp_path, monkeypatch):
    """A tiny randomly initialised cross-encoder stands in for a real one: the hits come back in
    the reranker's order, with its scores."""
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from knowledge.embeddings import default_model_path

    folder = tmp_path / "tiny-reranker"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(default_model_path())).save_pretrained(folder)
    monkeypatch.setenv("TUNEPILOT_RERANKER", str(folder))
    from knowledge.retrieval import search

    hits = search("lora rank", k=4, collection="real")
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    model = CrossEncoder(str(folder), device="cpu")
    from knowledge.chunking import passage

    expected = model.predict([("lora rank", passage(hits[0].title, hits[0].heading, hits[0].text))])
    assert float(expected[0]) == pytest.approx(hits[0].score, abs=1e-4)
    assert search("lora rank", k=4, collection="real", rerank=False)[0].score < 0.1  # RRF scores without it
