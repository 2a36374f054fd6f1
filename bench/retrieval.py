"""Retrieval quality and speed: dense-only vs BM25-only vs hybrid, on the shipped corpus and on a
foreign library's documentation folder.

    .venv/bin/python bench/retrieval.py [--foreign-docs DIR] [--json] [--rerank]

Works in a fresh temporary workspace (so ingest speed is measured from scratch) unless --home is
given. Question sets are JSONL, one `{"q", "source", "lang"}` per line (`source` may be a list of
acceptable files), `source` relative to the ingested root:
- bench/data/retrieval_shipped.jsonl over `knowledge.docs_path()` (the default collection, indexed
  the way the product does it on first use);
- bench/data/retrieval_foreign.jsonl over the Streamlit "developing-with-streamlit" docs that ship
  inside the installed `streamlit` package (`--foreign-docs` to point elsewhere; nothing of it is
  copied into the repo).
Prints recall@1, recall@5 and MRR@10 per mode (and per language), hybrid search latency p50/p95
with the models loaded, and ingest chunks/s. Targets: hybrid recall@5 >= 0.9 (shipped) and >= 0.85
(foreign); hybrid beats dense-only on Chinese; p50 < 50 ms on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

MODES = ("dense", "bm25", "hybrid")


def load_questions(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            src = row["source"]
            row["sources"] = [src] if isinstance(src, str) else list(src)
            rows.append(row)
    return rows


def default_foreign_docs() -> Path | None:
    try:
        import streamlit
    except ImportError:
        return None
    path = Path(streamlit.__file__).parent / ".agents" / "skills" / "developing-with-streamlit"
    return path if path.is_dir() else None


def evaluate(questions: list[dict], collection: str, rerank: bool) -> dict:
    from knowledge.retrieval import search

    out: dict = {}
    for mode in MODES:
        per_lang: dict[str, list[tuple[int, int, float]]] = {}
        misses = []
        for row in questions:
            hits = search(row["q"], k=10, collection=collection, mode=mode, rerank=rerank and mode == "hybrid")
            sources = [h.source for h in hits]
            rank = next((i + 1 for i, s in enumerate(sources) if s in row["sources"]), None)
            per_lang.setdefault(row.get("lang", "en"), []).append(
                (int(rank == 1), int(rank is not None and rank <= 5), 1.0 / rank if rank else 0.0)
            )
            if mode == "hybrid" and (rank is None or rank > 5):
                misses.append({"q": row["q"], "expected": row["sources"], "got": sources[:5]})
        scores = {}
        for lang, vals in list(per_lang.items()) + [("all", [v for vs in per_lang.values() for v in vs])]:
            n = len(vals)
            scores[lang] = {
                "n": n,
                "recall@1": round(sum(v[0] for v in vals) / n, 3),
                "recall@5": round(sum(v[1] for v in vals) / n, 3),
                "mrr@10": round(sum(v[2] for v in vals) / n, 3),
            }
        out[mode] = scores
        if mode == "hybrid":
            out["hybrid_misses"] = misses
    return out


def latency(questions: list[dict], collection: str, rerank: bool, rounds: int = 3) -> dict:
    from knowledge.retrieval import search

    for row in questions[:5]:  # warm-up: thread pools, caches
        search(row["q"], k=5, collection=collection, rerank=rerank)
    times = []
    for _ in range(rounds):
        for row in questions:
            t0 = time.perf_counter()
            search(row["q"], k=5, collection=collection, rerank=rerank)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "queries": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
    }


def run_set(name: str, docs: Path, questions: list[dict], collection: str, rerank: bool) -> dict:
    from knowledge.ingest import ingest

    t0 = time.perf_counter()
    summary = ingest([docs], collection=collection, progress=False)
    ingest_s = time.perf_counter() - t0
    return {
        "name": name,
        "docs": str(docs),
        "files": len(summary.added) + len(summary.updated) + len(summary.unchanged),
        "chunks": summary.chunks_total,
        "ingest": {
            "seconds": round(ingest_s, 2),
            "chunks_embedded": summary.chunks,
            "chunks_per_second": round(summary.chunks / ingest_s, 1) if summary.chunks else None,
            "skipped": summary.skipped,
        },
        "questions": len(questions),
        "quality": evaluate(questions, collection, rerank),
        "latency": latency(questions, collection, rerank),
    }


def print_report(result: dict) -> None:
    print(f"\n== {result['name']}: {result['files']} files, {result['chunks']} chunks, {result['questions']} questions")
    ing = result["ingest"]
    print(f"   ingest: {ing['seconds']} s, {ing['chunks_embedded']} chunks embedded, {ing['chunks_per_second']} chunks/s"
          + (f", {len(ing['skipped'])} skipped" if ing["skipped"] else ""))
    langs = [k for k in result["quality"]["hybrid"] if k != "all"] + ["all"]
    print(f"   {'mode':<8} {'lang':<4} {'n':>3} {'R@1':>6} {'R@5':>6} {'MRR':>6}")
    for mode in MODES:
        for lang in langs:
            s = result["quality"][mode][lang]
            print(f"   {mode:<8} {lang:<4} {s['n']:>3} {s['recall@1']:>6.3f} {s['recall@5']:>6.3f} {s['mrr@10']:>6.3f}")
    lat = result["latency"]
    print(f"   hybrid search latency over {lat['queries']} queries: p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms")
    for miss in result["quality"]["hybrid_misses"]:
        print(f"   miss: {miss['q']!r} expected {miss['expected']} got {miss['got']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="workspace to use (default: a fresh temporary one)")
    parser.add_argument("--shipped-questions", default=str(HERE / "data" / "retrieval_shipped.jsonl"))
    parser.add_argument("--foreign-questions", default=str(HERE / "data" / "retrieval_foreign.jsonl"))
    parser.add_argument("--foreign-docs", help="the foreign docs folder (default: streamlit's bundled docs)")
    parser.add_argument("--rerank", action="store_true", help="use TUNEPILOT_RERANKER in hybrid mode")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    args = parser.parse_args()

    tmp = None
    if args.home:
        os.environ["TUNEPILOT_HOME"] = args.home
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tp-bench-retrieval-")
        os.environ["TUNEPILOT_HOME"] = tmp.name
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import knowledge
    from knowledge.embeddings import get_embedder

    t0 = time.perf_counter()
    embedder = get_embedder()
    from tunepilot.core.language import tokenize

    tokenize("预热")  # jieba's dictionary
    load_s = time.perf_counter() - t0

    results = []
    shipped_q = Path(args.shipped_questions)
    if shipped_q.exists():
        results.append(run_set("shipped corpus", knowledge.docs_path(), load_questions(shipped_q), "default", args.rerank))
    else:
        print(f"(no {shipped_q}: shipped set skipped)", file=sys.stderr)
    foreign_docs = Path(args.foreign_docs) if args.foreign_docs else default_foreign_docs()
    foreign_q = Path(args.foreign_questions)
    if foreign_docs and foreign_docs.is_dir() and foreign_q.exists():
        results.append(run_set(f"foreign docs ({foreign_docs.name})", foreign_docs, load_questions(foreign_q), "bench-foreign", args.rerank))
    else:
        print("(foreign docs or questions not found: foreign set skipped)", file=sys.stderr)

    report = {
        "embedder": embedder.name,
        "model_load_seconds": round(load_s, 2),
        "reranker": os.environ.get("TUNEPILOT_RERANKER") if args.rerank else None,
        "sets": results,
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(f"embedder {embedder.name} (loaded in {load_s:.1f} s), cpu threads: {os.cpu_count()}")
        for result in results:
            print_report(result)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
