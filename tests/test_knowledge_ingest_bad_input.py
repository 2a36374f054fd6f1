"""A docs folder with duplicate files or a 50 MB PDF: skipped with a reason, the rest indexed
(real embedded Chroma, the deterministic hashing embedder); an index from an older tokenizer heals."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch):
    monkeypatch.setenv("TUNEPILOT_EMBEDDINGS", "hash")


LORA = "# LoRA\n\n## Rank\n\nThe LoRA rank r sets how many directions an adapter learns; 8 or 16 is typical.\n"
WARMUP = "# Warmup\n\n## Schedule\n\nWarmup raises the learning rate linearly over the first 3% of steps.\n"


def test_duplicate_files_are_indexed_once_and_named(tmp_path):
    from knowledge.ingest import ingest
    from knowledge.retrieval import search

    docs = tmp_path / "docs"
    (docs / "copy").mkdir(parents=True)
    (docs / "lora.md").write_text(LORA, encoding="utf-8")
    (docs / "copy" / "lora (1).md").write_text(LORA, encoding="utf-8")
    (docs / "warmup.md").write_text(WARMUP, encoding="utf-8")

    summary = ingest([docs], collection="dups", progress=False)
    # Files are walked in order (the folder's own files, then subfolders): the first copy wins.
    assert sorted(summary.added) == ["lora.md", "warmup.md"]
    skipped = {s["path"]: s["reason"] for s in summary.skipped}
    dup = "copy/lora (1).md"
    assert list(skipped) == [dup]
    assert skipped[dup].startswith("duplicate of ") and skipped[dup].endswith("lora.md (same content); indexed once")
    hits = search("LoRA rank adapter directions", k=5, collection="dups")
    assert len([h for h in hits if "rank r sets" in h.text]) == 1  # cited once, not twice

    # Re-running is stable: the same file is kept, the same one named.
    again = ingest([docs], collection="dups", progress=False)
    assert {s["path"] for s in again.skipped} == {dup}
    assert len(again.unchanged) == 2


def test_a_50_mb_pdf_is_skipped_with_the_limit_and_the_fix(tmp_path):
    from knowledge.ingest import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "warmup.md").write_text(WARMUP, encoding="utf-8")
    with open(docs / "scan.pdf", "wb") as fh:  # 50 MB without writing 50 MB: a sparse file
        fh.write(b"%PDF-1.4\n")
        fh.truncate(50 * 1024 * 1024)

    summary = ingest([docs], collection="big", progress=False)
    assert summary.added == ["warmup.md"]
    (skip,) = summary.skipped
    assert skip["path"] == "scan.pdf"
    assert "too large (50.0 MB" in skip["reason"] and "TUNEPILOT_MAX_FILE_MB" in skip["reason"]


def test_old_bm25_snapshot_is_rebuilt_not_searched(tmp_path, monkeypatch):
    """Changing the tokenizer bumps the snapshot format: an index written before still answers,
    from a snapshot rebuilt out of Chroma, and the rebuilt one is saved."""
    import pickle

    from knowledge import bm25_index, retrieval
    from knowledge.embeddings import get_embedder
    from knowledge.ingest import ingest
    from knowledge.store import get_store

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "warmup.md").write_text(WARMUP, encoding="utf-8")
    ingest([docs], collection="old", progress=False)
    st = get_store()
    path = st.snapshot_path(st.physical_name("old", get_embedder().name))
    data = pickle.loads(path.read_bytes())
    data["format"] = 1  # as written by the previous tokenizer
    data["tokens"] = [["stale"] for _ in data["tokens"]]
    path.write_bytes(pickle.dumps(data))
    retrieval._states.clear()

    hits = retrieval.search("warmup learning rate", k=1, collection="old")
    assert hits and hits[0].source == "warmup.md"
    assert pickle.loads(path.read_bytes())["format"] == bm25_index.FORMAT
