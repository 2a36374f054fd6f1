"""`tunepilot eval ...`: run an eval, compare two runs, and move datasets in and out of PromptLayer's CSV shape.

Thin front over `evals`: flags -> `EvalSpec` -> `run_eval`; tables with rich; `--json` prints one
document on stdout (progress goes to stderr). `--fail-under` turns a low mean into exit code 1 for CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tunepilot.cli.common import emit_json, user_errors

eval_app = typer.Typer(help="Score base and fine-tuned models on JSON/CSV test sets, and compare runs.",
                       no_args_is_help=True)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4f}"


@eval_app.command("run")
def run_cmd(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="JSON, JSONL, CSV or TSV file (UTF-8, UTF-8-BOM, GBK ...)."),
    model: List[str] = typer.Option([], "--model", "-m", help="Model to evaluate; repeat for several (base first). "
                                    "gemma-3-270m, a folder, an ft: id, or openai:<model>."),
    input_column: Optional[str] = typer.Option(None, "--input-column", help="Column with the user input (guessed if omitted)."),
    expected_column: Optional[str] = typer.Option(None, "--expected-column", help="Column with the reference answer (guessed if omitted)."),
    template: Optional[str] = typer.Option(None, "--template", help="Prompt template with {column} variables."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt (may use {column} variables)."),
    scorer: List[str] = typer.Option([], "--scorer", "-s", help="Scorer name; repeat for several (see `tunepilot eval scorers`)."),
    out: Optional[str] = typer.Option(None, "--out", help="Run folder; re-using one resumes it. Default: a new folder in $TUNEPILOT_HOME/evals."),
    config: Optional[str] = typer.Option(None, "--config", help="Eval config YAML (flags override its values)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Rows per batched generation (default 16)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1, help="Upper bound on generated tokens (default 128)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, help="0 (the default) is greedy and reproducible."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N rows."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Endpoint for openai:<model> models (else TUNEPILOT_OPENAI_BASE_URL)."),
    fail_under: List[str] = typer.Option([], "--fail-under", help="SCORER=VALUE (or SCORER@MODEL=VALUE): exit 1 if a mean is below VALUE "
                                         "(above it for latency/perplexity)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Generate replies for every row with every model, score them, and write JSON/CSV/HTML reports."""
    from evals.runner import check_fail_under, run_eval
    from evals.spec import build_spec, parse_fail_under

    with user_errors():
        models = [{"id": m, "base_url": base_url} if base_url and m.startswith("openai:") else m for m in model]
        spec = build_spec(config, dataset=dataset, models=models or None, input_column=input_column,
                          expected_column=expected_column, template=template, system=system,
                          scorers=scorer or None, out=out, batch_size=batch_size, max_new_tokens=max_new_tokens,
                          temperature=temperature, limit=limit, fail_under=parse_fail_under(fail_under) or None)
        summary = run_eval(spec, progress=True)
        failures = check_fail_under(summary, spec.fail_under)
    if as_json:
        result = dict(summary)
        if spec.fail_under:
            result["fail_under"] = {"thresholds": spec.fail_under, "failures": failures, "passed": not failures}
        emit_json(result)
    else:
        _print_summary(summary)
    if failures:
        for message in failures:
            typer.echo(f"fail-under: {message}", err=True)
        raise typer.Exit(1)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    scorers = [s["name"] for s in summary["scorers"]]
    table = Table(title=f"{summary['rows']} rows · {summary['run_dir']}")
    table.add_column("model")
    for name in scorers:
        table.add_column(name, justify="right")
    table.add_column("overall", justify="right")
    table.add_column("errors", justify="right")
    for model, info in summary["models"].items():
        table.add_row(model, *[_fmt(info["scores"].get(n)) for n in scorers], _fmt(info.get("overall")),
                      str(info["errors"]))
    console.print(table)
    for model, info in summary["models"].items():  # promptfoo assertions, per type
        totals = info.get("assertions")
        if totals:
            kinds = ", ".join(f"{kind} {t['passed']}/{t['passed'] + t['failed']}" + (f" ({t['errors']} could not run)" if t["errors"] else "")
                              for kind, t in totals["by_type"].items())
            undecided = f", {totals['tests_undecided']} undecided" if totals["tests_undecided"] else ""
            console.print(f"{model}: {totals['tests_passed']} of {totals['tests']} tests passed{undecided} · {kinds}")
    for note in summary.get("notices", []):
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"report: {Path(summary['run_dir']) / 'report.html'}")


@eval_app.command("compare")
def compare_cmd(
    run_a: str = typer.Argument(..., help="Run folder A (e.g. the base model's run)."),
    run_b: Optional[str] = typer.Argument(None, help="Run folder B (e.g. the fine-tuned model's run); omit to compare two models inside RUN_A."),
    model_a: Optional[str] = typer.Option(None, "--model-a", help="Model in run A (needed when it has several)."),
    model_b: Optional[str] = typer.Option(None, "--model-b", help="Model in run B (needed when it has several)."),
    n_boot: int = typer.Option(2000, "--bootstrap", min=100, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed (results are reproducible for a seed)."),
    show_rows: bool = typer.Option(False, "--rows", help="Also list rows whose outputs differ."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per-row wins/losses/ties of B against A for each scorer, with a paired bootstrap 95% interval."""
    from evals.compare import compare

    with user_errors():
        result = compare(run_a, run_b, model_a=model_a, model_b=model_b, n_boot=n_boot, seed=seed)
    if as_json:
        emit_json(result)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"B = {result['b']['model']}  vs  A = {result['a']['model']}  ({result['paired_rows']} paired rows)")
    for col in ("scorer", "wins", "ties", "losses", "mean A", "mean B", "B − A", "95% CI", "verdict"):
        table.add_column(col, justify="left" if col in ("scorer", "verdict") else "right")
    for name, item in result["scorers"].items():
        ci = item["ci95"]
        colour = {"B better": "green", "A better": "red"}.get(item["verdict"], "")
        verdict = f"[{colour}]{item['verdict']}[/{colour}]" if colour else item["verdict"]
        table.add_row(name + ("" if item["higher_is_better"] else " ↓"), str(item["wins"]), str(item["ties"]),
                      str(item["losses"]), _fmt(item["mean_a"]), _fmt(item["mean_b"]), f"{item['mean_diff']:+.4f}",
                      "—" if not ci else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]", verdict)
    console.print(table)
    console.print(f"errors: A {result['errors']['a']}, B {result['errors']['b']}  ·  wins/losses count rows where B is better/worse")
    for note in result.get("notices", []):
        console.print(f"[yellow]note:[/yellow] {note}")
    if show_rows:
        rows = Table("#", "input", "A", "B", show_lines=True)
        for row in result["rows"]:
            if row["output_a"] != row["output_b"]:
                rows.add_row(str(row["row"] + 1), row["input"] or "", row["error_a"] or row["output_a"] or "",
                             row["error_b"] or row["output_b"] or "")
        console.print(rows)


@eval_app.command("scorers")
def scorers_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the scorers and what they measure."""
    from evals.scorers import SCORERS

    items = [{"name": name, "description": cls.description, "higher_is_better": cls.higher_is_better,
              "needs_expected": cls.needs_expected, "options": list(cls.allowed_params)} for name, cls in SCORERS.items()]
    if as_json:
        emit_json({"scorers": items})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "what", "options")
    for item in items:
        table.add_row(item["name"], item["description"], ", ".join(item["options"]))
    Console().print(table)


@eval_app.command("export")
def export_cmd(
    dataset: str = typer.Argument(..., help="Dataset file (JSON, JSONL, CSV, TSV)."),
    out: str = typer.Option(..., "--out", "-o", help="CSV file to write in PromptLayer's dataset shape."),
    variable: List[str] = typer.Option([], "--variable", help="Template variable column(s) to keep (default: all but the expected column)."),
    expected_column: Optional[str] = typer.Option(None, "--expected-column", help="Column with the reference answer (guessed if omitted)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write a dataset as a PromptLayer dataset CSV (variable columns + expected_output, UTF-8 with BOM)."""
    from evals.datasets import export_promptlayer_csv, load_dataset

    with user_errors():
        data = load_dataset(dataset)
        path = export_promptlayer_csv(data, out, variables=variable or None, expected_column=expected_column)
    if as_json:
        emit_json({"out": str(path), "rows": len(data.rows), "source_encoding": data.encoding})
    else:
        typer.echo(f"wrote {len(data.rows)} rows to {path}")


@eval_app.command("import")
def import_cmd(
    csv_file: str = typer.Argument(..., help="A PromptLayer dataset CSV."),
    out: str = typer.Option(..., "--out", "-o", help="JSONL file to write (one row per line, UTF-8)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Read a PromptLayer dataset CSV (any encoding) into JSONL usable with `eval run --dataset`."""
    import json

    from evals.datasets import import_promptlayer_csv

    with user_errors():
        data = import_promptlayer_csv(csv_file)
        target = Path(out).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data.rows), encoding="utf-8")
    if as_json:
        emit_json({"out": str(target), "rows": len(data.rows), "columns": data.columns, "encoding": data.encoding})
    else:
        typer.echo(f"wrote {len(data.rows)} rows ({', '.join(data.columns)}) to {target}")


@eval_app.command("rag")
def rag_cmd(
    questions: str = typer.Option(..., "--questions", "-q", help="JSONL, JSON or CSV: question, expected_source and/or "
                                  "expected_fact (a regex), optional should_decline."),
    k: int = typer.Option(5, "-k", "--k", min=1, max=100, help="Passages retrieved per question (hit@k, MRR)."),
    collection: str = typer.Option("default", "--collection", "-c", help="Collection to search."),
    engine: str = typer.Option("extractive", "--engine", help="Answer engine: extractive, openai or local."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Score the docs assistant: hit@k, MRR, answers that state and cite the expected fact, decline precision/recall."""
    from tunepilot.cli.rag_view import print_rag_result

    with user_errors():
        from assistant.rag_eval import evaluate_file

        result = evaluate_file(questions, k=k, collection=collection, engine=engine, progress=True)
    if as_json:
        emit_json(result)
    else:
        print_rag_result(result)


def register(app: typer.Typer) -> None:
    """Add `tunepilot eval ...` to the root app."""
    app.add_typer(eval_app, name="eval")
