"""`tunepilot feedback list|export`: the chat's thumbs, corrections and declined questions, and the RAG eval set made from them."""

from __future__ import annotations

from typing import Optional

import typer

from tunepilot.cli.common import emit_json, user_errors

feedback_app = typer.Typer(help="Feedback on chat answers (kept in the workspace) and the RAG eval set made from it.",
                           no_args_is_help=True)


@feedback_app.command("list")
def list_cmd(
    declined: bool = typer.Option(False, "--declined", help="Only the questions the assistant declined."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the stored feedback, newest first."""
    from assistant import feedback

    with user_errors():
        entries = feedback.list_entries()
        counts = feedback.summary(entries)
    entries = [e for e in reversed(entries) if not declined or not e.get("grounded")]
    if as_json:
        emit_json({"entries": entries, "counts": counts, "path": str(feedback.store_path())})
        return
    if not entries:
        typer.echo("no feedback yet (rate answers with the thumbs in the chat: tunepilot ui)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("when", "rating", "status", "question", "correction", "sources")
    for e in entries:
        table.add_row(e.get("updated_at", ""), {"up": "👍", "down": "👎"}.get(e.get("rating"), "—"),
                      "answered" if e.get("grounded") else "declined", e["question"][:70], (e.get("correction") or "")[:50],
                      ", ".join(dict.fromkeys(c["source"] for c in e.get("citations", []))))
    Console().print(table)
    typer.echo(f"{counts['entries']} entries: {counts['up']} up, {counts['down']} down, {counts['corrections']} "
               f"corrections, {counts['declined']} declined")


@feedback_app.command("export")
def export_cmd(
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the eval set here (.jsonl, .json or .csv) for "
                                      "`tunepilot eval rag --questions`."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (the rows and what was skipped)."),
) -> None:
    """Turn feedback into a RAG eval set: thumbs up -> expected_source, corrections -> expected_fact, agreed declines -> should_decline."""
    from assistant.feedback import export_eval_set

    with user_errors():
        result = export_eval_set(out)
    if as_json:
        emit_json(result)
        return
    if result["out"]:
        typer.echo(f"wrote {result['count']} questions to {result['out']}")
    else:
        import json

        for row in result["rows"]:
            typer.echo(json.dumps(row, ensure_ascii=False))
    for item in result["skipped"]:
        typer.echo(f"  skipped {item['question'][:60]!r}: {item['reason']}", err=True)


def register(app: typer.Typer) -> None:
    """Add `tunepilot feedback ...` to the root app."""
    app.add_typer(feedback_app, name="feedback")
