"""`tunepilot ingest` and `tunepilot search`: the knowledge base from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tunepilot.cli.common import emit_json, fail, user_errors


def _print_summary(data: dict) -> None:
    c = data["counts"]
    typer.echo(
        f"{data['collection']}: {c['added']} added, {c['updated']} updated, {c['unchanged']} unchanged, "
        f"{c['removed']} removed, {c['skipped']} skipped; {data['chunks']} chunks embedded in "
        f"{data['seconds']:.1f}s; {data['chunks_total']} chunks indexed ({data['store']})"
    )
    for item in data["skipped"]:
        typer.echo(f"  skipped {item['path']}: {item['reason']}")


def _print_hits(hits: list[dict]) -> None:
    if not hits:
        typer.echo("  (no matching passages)")
    for h in hits:
        snippet = " ".join(h["text"].split())
        typer.echo(f"[{h['rank']}] {h['source']} — {h['heading']}  ({h['score']:.4f}, {h['lang']})")
        typer.echo(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}")


def _read_queries(path: Path) -> list[str]:
    from knowledge.loaders import LoadError, decode

    if not path.is_file():
        raise FileNotFoundError(f"queries file {path} does not exist")
    try:
        text, _ = decode(path.read_bytes())
    except LoadError as exc:
        fail(f"cannot read {path}: {exc}")
    return [line.strip() for line in text.splitlines() if line.strip()]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root `tunepilot` app."""

    @app.command("ingest")
    def ingest_cmd(
        paths: Optional[List[Path]] = typer.Argument(None, help="Files or folders (.md .mdx .txt .rst .html .pdf)."),
        collection: str = typer.Option("default", "--collection", "-c", help="Collection to add them to."),
        strict: bool = typer.Option(False, "--strict", help="Exit 1 if any file is skipped."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        chroma_url: Optional[str] = typer.Option(
            None, "--chroma-url", help="A Chroma server (e.g. http://127.0.0.1:8000) instead of the local index; "
            "default $TUNEPILOT_CHROMA_URL."
        ),
        libraries: bool = typer.Option(
            False, "--libraries", help="Also index the parameter docs of the installed transformers, peft and trl "
            "(one passage per parameter, tagged with the version; the default collection has them already)."
        ),
    ) -> None:
        """Index documents (incremental: unchanged files cost nothing, deleted ones are dropped)."""
        from knowledge.ingest import IngestError, ingest

        if not paths and not libraries:
            fail("give at least one file or folder to index, or --libraries")
        with user_errors():
            try:
                summary = ingest(paths or [], collection=collection, progress=True, strict=strict,
                                 chroma_url=chroma_url, libraries=libraries)
            except IngestError as exc:
                summary = exc.summary
            data = summary.to_dict()
            if json_out:
                emit_json(data)
            else:
                _print_summary(data)
            if strict and summary.skipped:
                raise typer.Exit(1)

    @app.command("search")
    def search_cmd(
        query: Optional[str] = typer.Argument(None, help="The question or keywords."),
        k: int = typer.Option(5, "-k", "--top-k", min=1, max=100, help="How many passages."),
        collection: str = typer.Option("default", "--collection", "-c"),
        json_out: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
        queries_file: Optional[Path] = typer.Option(
            None, "--queries-file", help="A file with one query per line (models load once)."
        ),
        mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or bm25."),
        chroma_url: Optional[str] = typer.Option(None, "--chroma-url", help="Search a Chroma server's index."),
    ) -> None:
        """Search the knowledge base (hybrid dense + BM25)."""
        from knowledge.retrieval import search

        if (query is None) == (queries_file is None):
            fail("give either a QUERY or --queries-file FILE")
        with user_errors():
            if queries_file is not None:
                results = [
                    {"query": q, "hits": [h.to_dict() for h in search(q, k=k, collection=collection, mode=mode, chroma_url=chroma_url)]}
                    for q in _read_queries(queries_file)
                ]
                if json_out:
                    emit_json({"results": results})
                else:
                    for r in results:
                        typer.echo(f"# {r['query']}")
                        _print_hits(r["hits"])
                return
            hits = [h.to_dict() for h in search(query, k=k, collection=collection, mode=mode, chroma_url=chroma_url)]
            if json_out:
                emit_json({"hits": hits})
            else:
                _print_hits(hits)
