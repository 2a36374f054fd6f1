"""The human-readable form of a RAG eval result (`tunepilot eval rag` without `--json`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

LABELS = {
    "hit_at_k": "hit@{k}",
    "mrr": "MRR",
    "fact_in_passages": "fact in top {k} passages",
    "answer_contains_fact": "answer contains the fact",
    "citation_support": "a citation holds the fact",
    "decline_precision": "decline precision",
    "decline_recall": "decline recall",
}


def print_rag_result(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    counts = result["counts"]
    table = Table(title=f"{counts['questions']} questions · {result['questions_file']} · k={result['k']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("questions", justify="right")
    for name, label in LABELS.items():
        value = result["metrics"].get(name)
        table.add_row(label.format(k=result["k"]), "—" if value is None else f"{value:.3f}",
                      str(result["support"].get(name, 0)))
    console.print(table)
    misses = [r for r in result["rows"] if r.get("error") or r.get("hit") is False
              or r.get("citation_support") is False or r["declined"] != r["should_decline"]]
    if misses:
        rows = Table("row", "question", "problem", show_lines=False)
        for r in misses[:30]:
            rows.add_row(str(r["row"]), r["question"][:80], _problem(r))
        console.print(rows)
        if len(misses) > 30:
            console.print(f"… and {len(misses) - 30} more (see --json)")
    for note in result.get("notices", []):
        console.print(f"[yellow]note:[/yellow] {note}")
    if result.get("saved_as"):
        console.print(f"saved: {result['saved_as']}")


def _problem(r: dict) -> str:
    if r.get("error"):
        return f"error: {r['error']}"
    parts = []
    if r["declined"] and not r["should_decline"]:
        parts.append("declined but should answer")
    if not r["declined"] and r["should_decline"]:
        parts.append("answered but should decline")
    if r.get("hit") is False:
        parts.append(f"expected source not in top {len(r.get('top_sources', []))}")
    if r.get("citation_support") is False and not r["should_decline"]:
        parts.append("no citation holds the fact")
    return "; ".join(parts)
