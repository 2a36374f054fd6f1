"""Ingest and search through a real embedded Chroma with the deterministic hashing embedder:
incremental re-ingest, bad files, crashes, concurrent searches, the shipped corpus."""

from __future__ import annotations

import codecs
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch):
    monkeypatch.setenv("TUNEPILOT_EMBEDDINGS", "hash")


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(FIXTURES, root)
    return root


def _chunks_of(collection: str) -> dict[str, list[dict]]:
    """source -> chunk metadatas, straight from Chroma."""
    from knowledge.embeddings import get_embedder
    from knowledge.store import Store, all_chunks

    col = Store().open(collection, get_embedder().name, create=False)
    out: dict[str, list[dict]] = {}
    for _, _, meta in zip(*all_chunks(col)):
        out.setdefault(meta["source"], []).append(meta)
    return out


def test_ingest_then_search_finds_the_right_file(corpus):
    from knowledge.ingest import ingest
    from knowledge.retrieval import search

    summary = ingest([corpus], collection="t", progress=False)
    assert sorted(summary.added) == ["en/datasets.md", "en/lora.md", "en/memory.md", "zh/datasets.md", "zh/lora.md", "zh/memory.md"]
    assert summary.skipped == [] and summary.chunks == summary.chunks_total > 6
    data = summary.to_dict()
    assert data["counts"] == {"added": 6, "updated": 0, "unchanged": 0, "removed": 0, "skipped": 0}
    assert set(data) >= {"added", "updated", "unchanged", "removed", "skipped", "chunks", "seconds"}

    hits = search("lora_alpha rank", k=3, collection="t")
    assert hits[0].source == "en/lora.md" and hits[0].heading == "LoRA adapters > Rank and alpha"
    assert [h.rank for h in hits] == [1, 2, 3]
    assert set(hits[0].to_dict()) == {"rank", "score", "source", "heading", "text", "lang"}
    assert "lora_alpha" in hits[0].text and "Copyright" not in hits[0].text and "title:" not in hits[0].text

    zh = search("梯度检查点会增加多少计算量", k=3, collection="t")
    assert zh[0].source == "zh/memory.md" and zh[0].lang == "zh" and "梯度检查点" in zh[0].heading

    metas = _chunks_of("t")["zh/lora.md"]
    assert {m["lang"] for m in metas} == {"zh"} and all(m["content_hash"] and m["file_hash"] for m in metas)


def test_reingest_is_incremental(corpus):
    from knowledge.ingest import ingest
    from knowledge.retrieval import search

    first = ingest([corpus], collection="t", progress=False)
    again = ingest([corpus], collection="t", progress=False)
    assert again.chunks == 0 and len(again.unchanged) == 6 and not (again.added or again.updated or again.removed)
    assert again.chunks_total == first.chunks_total

    # change one file, delete another
    lora = corpus / "en" / "lora.md"
    lora.write_text(lora.read_text(encoding="utf-8").replace("merge_and_unload", "merge_and_unload (zebra-marker)"), encoding="utf-8")
    (corpus / "zh" / "datasets.md").unlink()
    third = ingest([corpus], collection="t", progress=False)
    assert third.updated == ["en/lora.md"] and third.removed == ["zh/datasets.md"] and len(third.unchanged) == 4
    assert 0 < third.chunks <= len(_chunks_of("t")["en/lora.md"])

    chunks = _chunks_of("t")
    assert "zh/datasets.md" not in chunks
    assert len({m["file_hash"] for m in chunks["en/lora.md"]}) == 1  # old version gone
    assert sum(len(v) for v in chunks.values()) == third.chunks_total
    assert search("zebra-marker", k=1, collection="t")[0].source == "en/lora.md"
    assert all(h.source != "zh/datasets.md" for h in search("去重 验证集", k=10, collection="t"))


def test_ingesting_a_single_file_keeps_the_rest(corpus):
    from knowledge.ingest import ingest

    ingest([corpus / "en"], collection="t", progress=False)
    single = ingest([corpus / "zh" / "lora.md"], collection="t", progress=False)
    assert single.added == ["lora.md"] and single.removed == []
    assert set(_chunks_of("t")) == {"datasets.md", "lora.md", "memory.md"}
    assert len(ingest([corpus / "en"], collection="t", progress=False).unchanged) == 3


def test_encodings_and_bad_files_are_reported(tmp_path, monkeypatch):
    from knowledge.ingest import IngestError, ingest
    from knowledge.retrieval import search

    docs = tmp_path / "mixed"
    docs.mkdir()
    (docs / "gbk.txt").write_bytes("数据集去重：训练前删除重复样本，避免模型死记硬背。".encode("gbk"))
    (docs / "bom.md").write_bytes(codecs.BOM_UTF8 + "---\ntitle: 带 BOM 的文件\nlang: zh\n---\n\n## 预热\n\n学习率预热可以稳定训练初期。".encode("utf-8"))
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage without xref or trailer")
    (docs / "fake.pdf").write_bytes(b"this is not a pdf at all")
    (docs / "empty.md").write_bytes(b"")
    (docs / "only-front-matter.md").write_text("---\ntitle: nothing\n---\n<!-- nothing here -->\n", encoding="utf-8")
    (docs / "big.md").write_text("x " * 700_000, encoding="utf-8")
    (docs / "image.png").write_bytes(b"\x89PNG")  # unsupported type: not even looked at
    monkeypatch.setenv("TUNEPILOT_MAX_FILE_MB", "1")

    summary = ingest([docs], collection="bad", progress=False)
    assert sorted(summary.added) == ["bom.md", "gbk.txt"]
    reasons = {s["path"]: s["reason"] for s in summary.skipped}
    assert set(reasons) == {"blob.txt", "broken.pdf", "fake.pdf", "empty.md", "only-front-matter.md", "big.md"}
    assert "binary" in reasons["blob.txt"]
    assert "broken PDF" in reasons["broken.pdf"] and "broken PDF" in reasons["fake.pdf"]
    assert "empty" in reasons["empty.md"] and "too large" in reasons["big.md"]
    assert "no text" in reasons["only-front-matter.md"]

    assert search("数据集去重", k=1, collection="bad")[0].source == "gbk.txt"
    bom = search("学习率预热", k=1, collection="bad")[0]
    assert bom.source == "bom.md" and bom.heading == "预热" and not bom.text.startswith("\ufeff")

    with pytest.raises(IngestError) as err:
        ingest([docs], collection="bad", progress=False, strict=True)
    assert len(err.value.summary.skipped) == 6 and len(err.value.summary.unchanged) == 2


def test_empty_folder_and_missing_path(tmp_path):
    from knowledge.ingest import ingest

    (tmp_path / "empty").mkdir()
    summary = ingest([tmp_path / "empty"], collection="t", progress=False)
    assert summary.added == [] and "no supported documents" in summary.skipped[0]["reason"]
    with pytest.raises(FileNotFoundError):
        ingest([tmp_path / "nope"], collection="t", progress=False)


def test_a_file_that_breaks_is_removed_from_the_index(corpus):
    from knowledge.ingest import ingest

    ingest([corpus], collection="t", progress=False)
    (corpus / "en" / "memory.md").write_bytes(b"\x00\x00binary now")
    summary = ingest([corpus], collection="t", progress=False)
    assert summary.skipped[0]["path"] == "en/memory.md"
    assert "en/memory.md" not in _chunks_of("t")


def test_crash_mid_ingest_leaves_consistent_index_and_rerun_completes(corpus, monkeypatch):
    from knowledge import store
    from knowledge.ingest import ingest
    from knowledge.retrieval import search

    real = store.replace_file
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third file is being written
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "replace_file", crashing)
    with pytest.raises(KeyboardInterrupt):
        ingest([corpus], collection="t", progress=False)
    monkeypatch.setattr(store, "replace_file", real)

    committed = _chunks_of("t")
    assert len(committed) == 2  # whole files only
    assert all(len(v) == v[0]["n_chunks"] for v in committed.values())
    # searches work on what was committed (BM25 is rebuilt from Chroma: the revision is dirty)
    assert search("lora", k=3, collection="t")

    rerun = ingest([corpus], collection="t", progress=False)
    assert len(rerun.unchanged) == 2 and len(rerun.added) == 4
    assert len(_chunks_of("t")) == 6
    assert search("梯度检查点", k=1, collection="t")[0].source == "zh/memory.md"


@pytest.mark.integration
def test_hard_kill_between_add_and_delete_is_repaired(corpus, tmp_path):
    """A process killed (no cleanup at all) after adding a changed file's new chunks but before
    deleting its old ones: the re-run sees two versions and replaces them with one."""
    from knowledge.ingest import ingest

    ingest([corpus], collection="t", progress=False)
    lora = corpus / "en" / "lora.md"
    lora.write_text(lora.read_text(encoding="utf-8") + "\n## Extra\n\nNew section about quokkas.\n", encoding="utf-8")
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from knowledge import store
        from knowledge.ingest import ingest

        def killed(col, ids, embeddings, documents, metadatas, old_ids):
            col.upsert(ids=ids, embeddings=embeddings, documents=documents, metadatas=metadatas)
            os._exit(9)

        store.replace_file = killed
        ingest([{str(corpus)!r}], collection="t", progress=False)
    """))
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=dict(os.environ), capture_output=True, timeout=300)
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]
    assert len({m["file_hash"] for m in _chunks_of("t")["en/lora.md"]}) == 2  # both versions present

    from knowledge.retrieval import search

    assert search("quokkas", k=1, collection="t")[0].source == "en/lora.md"  # search still works
    rerun = ingest([corpus], collection="t", progress=False)
    assert rerun.updated == ["en/lora.md"] and len(rerun.unchanged) == 5
    metas = _chunks_of("t")["en/lora.md"]
    assert len({m["file_hash"] for m in metas}) == 1 and len(metas) == metas[0]["n_chunks"]


def test_searches_keep_working_during_an_ingest(corpus, monkeypatch):
    from knowledge import ingest as ingest_mod
    from knowledge.embeddings import get_embedder
    from knowledge.retrieval import search

    ingest_mod.ingest([corpus / "en"], collection="t", progress=False)
    embedder = get_embedder()
    started, release = threading.Event(), threading.Event()

    class Slow:
        name, dim = embedder.name, embedder.dim

        def embed(self, texts):
            if len(texts) > 1:  # the ingest's batches, not the search's query
                started.set()
                release.wait(30)
            return embedder.embed(texts)

    monkeypatch.setattr(ingest_mod, "get_embedder", lambda: Slow())
    errors: list[BaseException] = []

    def run():
        try:
            ingest_mod.ingest([corpus / "zh"], collection="t", progress=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(60)
    for _ in range(5):
        assert search("gradient checkpointing", k=2, collection="t")[0].source == "memory.md"
    release.set()
    worker.join(120)
    assert not errors
    import time

    time.sleep(1.1)  # past the revision check interval
    assert search("梯度检查点", k=1, collection="t")[0].lang == "zh"


def test_shipped_corpus_is_indexed_on_first_use_and_resynced(corpus, monkeypatch):
    import knowledge.ingest as ingest_mod
    import knowledge.retrieval as retrieval

    shipped = corpus / "en"
    monkeypatch.setattr(ingest_mod, "docs_path", lambda: shipped)
    # This test is about the shipped docs; the installed libraries' parameter docs, which the
    # default collection also holds (test_knowledge_library_docs), would outrank this tiny corpus.
    monkeypatch.setattr("knowledge.library_docs.installed_versions", lambda: {})
    hits = retrieval.search("gradient checkpointing", k=2)
    assert hits and hits[0].source == "memory.md"

    (shipped / "lora.md").unlink()
    (shipped / "new.md").write_text("# New\n\n## Wombats\n\nWombats train adapters at night.\n", encoding="utf-8")
    monkeypatch.setattr(retrieval, "REFRESH_SECONDS", 0.0)
    assert retrieval.search("wombats", k=1)[0].source == "new.md"
    assert all(h.source != "lora.md" for h in retrieval.search("merge_and_unload adapter", k=5))


def test_unknown_collection_and_bad_names():
    from knowledge import KnowledgeError
    from knowledge.ingest import ingest
    from knowledge.retrieval import search

    with pytest.raises(KnowledgeError, match="no collection"):
        search("x", collection="never-made")
    with pytest.raises(KnowledgeError, match="invalid collection"):
        ingest([FIXTURES], collection="bad name!", progress=False)
    with pytest.raises(KnowledgeError, match="empty query"):
        search("   ", collection="never-made")


def test_the_shipped_corpus_loads_cleanly():
    """Every shipped doc parses: front matter with title and lang, no skips, chunks in its language."""
    from knowledge import docs_path
    from knowledge.loaders import load, walk

    files = walk(docs_path())
    assert len(files) >= 30
    for lang in ("en", "zh"):
        assert {f.name for f in files if f.parent.name == lang} == {f.name for f in files if f.parent.name != lang}, "every topic in both languages"
    for f in files:
        doc = load(f)
        assert doc.title != f.stem and doc.lang == f.parent.name and doc.sources, f
        assert "---" not in doc.parts[0].page_content[:5]

    from knowledge.retrieval import search

    hits = search("LoRA rank alpha", k=3)  # default collection: indexes the shipped corpus itself
    assert hits and hits[0].source.endswith("lora.md")
    # The default collection also holds the installed libraries' parameter docs (test_knowledge_library_docs).
    chunks = {src: metas for src, metas in _chunks_of("default").items() if not src.startswith("library/")}
    assert set(chunks) == {f.relative_to(docs_path()).as_posix() for f in files}
    assert all(m["lang"] == src.split("/")[0] for src, metas in chunks.items() for m in metas)


@pytest.mark.integration
def test_searches_keep_working_while_another_process_ingests(corpus, tmp_path, monkeypatch):
    """The app searching while `tunepilot ingest` runs in a terminal: no errors, and the new
    documents show up once that ingest is done (embedded Chroma keeps vectors in memory per
    process, so the reader must notice the other writer and reload)."""
    import time

    import knowledge.retrieval as retrieval
    from knowledge import docs_path
    from knowledge.ingest import ingest

    ingest([corpus / "en"], collection="t", progress=False)
    assert retrieval.search("gradient checkpointing", k=1, collection="t")
    big = tmp_path / "big"
    shutil.copytree(docs_path(), big)
    monkeypatch.setattr(retrieval, "REFRESH_SECONDS", 0.0)
    child = subprocess.Popen(
        [sys.executable, "-c", f"from knowledge.ingest import ingest; ingest([{str(big)!r}], collection='t', progress=False)"],
        cwd=REPO, env=dict(os.environ), stderr=subprocess.PIPE,
    )
    searched = 0
    while child.poll() is None:
        assert retrieval.search("gradient checkpointing 梯度检查点", k=3, collection="t")
        searched += 1
        time.sleep(0.05)
    assert child.returncode == 0, child.stderr.read().decode()[-2000:]
    assert searched > 0
    hits = retrieval.search("QLoRA NF4 double quantization paged optimizers", k=3, collection="t")
    assert hits[0].source == "en/qlora.md"
    assert retrieval.search("QLoRA NF4 double quantization", k=3, collection="t", mode="dense")[0].source.endswith("qlora.md")
