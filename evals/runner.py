"""`run_eval(spec)`: dataset -> prompts -> every model -> scorers -> results and reports in a run folder.

Steps, top to bottom: load the dataset and resolve its columns; check templates, scorers and model
names (all before any generation, so mistakes fail in seconds); then per model generate the rows
not yet scored (batched; longest prompts first so each batch pads little), score each row and append
it to results.jsonl at once; finally summarise (means, corpus-level details, thresholds) and write
summary.json, results.csv and report.html.

Resuming: a re-run with the same `out` folder skips (model, row) pairs already scored. A row that
errored is tried again; a row scored before a scorer was added only gets the new scorer (from the
stored reply, no generation).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from evals import runstore, template
from evals.datasets import (
    EXPECTED_COLUMN_CANDIDATES,
    INPUT_COLUMN_CANDIDATES,
    Dataset,
    cell_text,
    guess_column,
    load_dataset,
    require_columns,
)
from evals.errors import EvalError
from evals.promptlayer_log import PromptLayerLogger
from evals.providers import Provider, make_provider
from evals.scorers import RowContext, Scorer, build_scorers
from evals.spec import (
    DEFAULT_SCORERS_WITH_EXPECTED,
    DEFAULT_SCORERS_WITHOUT_EXPECTED,
    EvalSpec,
    ScorerSpec,
)
from evals.tools import EXPECTED_CALL_COLUMN, expected_call, row_tools
from tunepilot.core.progress import progress_bar


@dataclass
class EvalRow:
    """One dataset row, rendered: what is sent to every model and what its reply is scored against."""

    index: int
    key: str
    row: dict
    prompt: str
    system: str | None
    expected: str | None
    tools: list[dict] | None = None  # offered to the model (evals.tools: a `tools` column)

    @property
    def messages(self) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": self.prompt}]


@dataclass
class PreparedRun:
    dataset: Dataset
    rows: list[EvalRow]
    input_column: str | None
    expected_column: str | None
    template: str
    scorer_specs: list[ScorerSpec]


# ---------------------------------------------------------------- preparation

def prepare(spec: EvalSpec) -> PreparedRun:
    """Load the dataset and render every row; raises EvalError for any column/template problem."""
    if spec.promptfoo:  # rows (tests x prompts) already rendered, each with its own assertions
        from evals.promptfoo import promptfoo_dataset

        dataset = promptfoo_dataset(spec.promptfoo, used_providers=[p.id for p in spec.providers])
    else:
        dataset = load_dataset(spec.dataset)
        from evals.promptfoo import as_assertion_dataset, assertion_columns

        asserting = assertion_columns(dataset.columns)
        if asserting:  # a promptfoo-style tests CSV: its __expected cells are assertions, never reference answers
            if spec.expected_column in asserting:
                raise EvalError(f"--expected-column {spec.expected_column} holds promptfoo assertions (such as "
                                "icontains:bonjour), not reference answers; leave it out and they are scored by `asserts`.")
            dataset = as_assertion_dataset(dataset)
    columns = dataset.columns
    has_assertions = bool(columns) and "__asserts" in columns
    needed: dict[str, str] = {}
    if spec.input_column:
        needed[spec.input_column] = "input"
    if spec.expected_column:
        needed[spec.expected_column] = "expected answer"
    require_columns(dataset, needed)

    input_column = spec.input_column or (None if spec.template or spec.promptfoo else guess_column(columns, INPUT_COLUMN_CANDIDATES))
    if spec.promptfoo and not spec.template:
        spec = spec.model_copy(update={"template": "{__prompt}",
                                       "system": spec.system or ("{__system}" if any(r["__system"] for r in dataset.rows) else None)})
    if not spec.template and not input_column:
        found = ", ".join(repr(c) for c in columns)
        raise EvalError(f"Cannot tell which column is the input; columns found: {found}. Pass --input-column or --template.")
    prompt_template = spec.template or "{" + input_column + "}"
    template.check_variables(prompt_template, columns)

    system_template = spec.system
    if system_template is None and "system" in columns and "messages" in columns:
        system_template = "{system}"  # chat-format rows bring their own system prompt
    if system_template:
        template.check_variables(system_template, columns, what="system prompt")

    expected_column = spec.expected_column
    if expected_column is None and not has_assertions:  # promptfoo's __expected holds assertions, never a reference answer
        guess = guess_column([c for c in columns if c != input_column], EXPECTED_COLUMN_CANDIDATES)
        expected_column = guess
    scorer_specs = list(spec.scorers) or [
        ScorerSpec(name=n) for n in (DEFAULT_SCORERS_WITH_EXPECTED if expected_column else DEFAULT_SCORERS_WITHOUT_EXPECTED)
    ]
    if has_assertions and not any(s.name == "asserts" for s in scorer_specs):
        scorer_specs.insert(0, ScorerSpec(name="asserts"))
    if EXPECTED_CALL_COLUMN in columns and not any(s.name == "tool_call" for s in scorer_specs):
        scorer_specs.insert(0, ScorerSpec(name="tool_call"))

    source_rows = dataset.rows[: spec.limit] if spec.limit else dataset.rows
    rows, empty = [], []
    for i, row in enumerate(source_rows):
        prompt = template.render(prompt_template, row).strip()
        if not prompt:
            empty.append(i + 1)
            continue
        system = template.render(system_template, row).strip() if system_template else None
        expected = cell_text(row.get(expected_column)) if expected_column else None
        eval_row = EvalRow(index=i, key="", row=row, prompt=prompt, system=system or None, expected=expected)
        eval_row.tools = row_tools(row, i + 1, eval_row.messages)
        expected_call(row, i + 1)  # a malformed expected_tool_call fails now, before any generation
        identity = [prompt, system, expected] + ([row["__asserts"]] if "__asserts" in row else [])
        identity += [eval_row.tools] if eval_row.tools else []
        digest = hashlib.sha1(json.dumps(identity, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()[:10]
        eval_row.key = f"{i}-{digest}"
        rows.append(eval_row)
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        raise EvalError(f"Row(s) {shown} of {dataset.path} give an empty prompt (the input is blank); fill them in or remove them.")
    return PreparedRun(dataset, rows, input_column, expected_column, prompt_template, scorer_specs)


def _check_scorers(scorers: list[Scorer], expected_column: str | None, columns: list[str]) -> None:
    names = [s.name for s in scorers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EvalError(f"Scorer(s) {', '.join(dupes)} listed twice; list each scorer once.")
    needy = [s.name for s in scorers if s.needs_expected]
    if needy and not expected_column:
        found = ", ".join(repr(c) for c in columns)
        raise EvalError(f"Scorer(s) {', '.join(needy)} need an expected answer but no expected column was found "
                        f"(columns found: {found}); pass --expected-column.")


# ---------------------------------------------------------------- scoring

def score_row(scorers: list[Scorer], ctx: RowContext, scores: dict | None = None,
              details: dict | None = None) -> tuple[dict, dict]:
    """Fill in each scorer missing from `scores`; a scorer that raises is recorded in score_errors.
    Scorers that return per-item details (the promptfoo `asserts` scorer) fill `details[name]`."""
    scores = dict(scores or {})
    errors: dict[str, str] = {}
    for scorer in scorers:
        if scorer.name in scores:
            continue
        try:
            value = scorer.score(ctx)
        except Exception as exc:  # one scorer failing on one row must not stop the run
            errors[scorer.name] = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        if hasattr(value, "details"):
            if details is not None:
                details[scorer.name] = value.details
            value = value.value
        scores[scorer.name] = None if value is None else float(value)
    return scores, errors


def row_overall(scores: dict, scorers: list[Scorer], weights: dict[str, float]) -> float | None:
    """Weighted mean of the row's bounded, higher-is-better scores."""
    total = weight_sum = 0.0
    for s in scorers:
        value = scores.get(s.name)
        if value is None or not s.bounded or not s.higher_is_better:
            continue
        w = weights.get(s.name, 1.0)
        total += w * value
        weight_sum += w
    return total / weight_sum if weight_sum else None


def row_passed(scores: dict, scorers: list[Scorer], thresholds: dict[str, float]) -> bool | None:
    checks = []
    for s in scorers:
        if s.name not in thresholds or scores.get(s.name) is None:
            continue
        value, bar = scores[s.name], thresholds[s.name]
        checks.append(value >= bar if s.higher_is_better else value <= bar)
    return all(checks) if checks else None


# ---------------------------------------------------------------- the run

def run_eval(spec: EvalSpec | dict, progress: bool = True, on_progress=None) -> dict:
    """Run (or resume) an eval; returns the `tunepilot eval run --json` document.

    `progress` draws rich bars on stderr; `on_progress(model, done, total)` is called after each row
    (for UIs such as the Streamlit page).
    """
    if isinstance(spec, dict):
        from evals.spec import parse_spec

        spec = parse_spec(spec)
    from evals.preference import is_preference_set, run_preference_eval

    if is_preference_set(spec.dataset):  # chosen/rejected pairs: scored by log-probability, nothing generated
        return run_preference_eval(spec, progress=progress, on_progress=on_progress)
    prepared = prepare(spec)
    scorers = build_scorers(prepared.scorer_specs, settings=spec)
    _check_scorers(scorers, prepared.expected_column, prepared.dataset.columns)
    canonical = {sp.name: sc.name for sp, sc in zip(prepared.scorer_specs, scorers)}
    weights = {canonical[sp.name]: sp.weight for sp in prepared.scorer_specs}
    thresholds = {canonical[sp.name]: sp.threshold for sp in prepared.scorer_specs if sp.threshold is not None}
    providers = [make_provider(p, device=spec.device) for p in spec.providers]
    for provider in providers:
        provider.check()

    notices = list(prepared.dataset.notes)
    active = []
    for scorer in scorers:
        reason = scorer.unavailable_reason()
        if reason:
            notices.append(reason)
        else:
            active.append(scorer)

    run_dir = Path(spec.out).expanduser().resolve() if spec.out else runstore.new_run_dir(spec.dataset)
    run_dir.mkdir(parents=True, exist_ok=True)
    runstore.write_json(run_dir / runstore.SPEC_FILE, spec.model_dump())
    latest = runstore.latest_records(runstore.read_records(run_dir))
    logger = PromptLayerLogger.from_env(run_name=run_dir.name, tags=spec.tags)

    with _progress_bar(progress) as bar:
        for provider in providers:
            _run_provider(provider, prepared.rows, active, spec, run_dir, latest, weights, thresholds, bar, logger,
                          on_progress)

    final = [latest[(p.name, r.key)] for p in providers for r in prepared.rows if (p.name, r.key) in latest]
    for rec in final:  # weights/thresholds may have changed since an earlier, resumed run
        if not rec.get("error"):
            rec["overall"] = row_overall(rec["scores"], active, weights)
            rec["passed"] = row_passed(rec["scores"], active, thresholds)
    # Keep other models' results for these rows (an earlier run into the same folder); drop stale rows.
    names, keys = {p.name for p in providers}, {r.key for r in prepared.rows}
    kept = [rec for (model, key), rec in latest.items() if model not in names and key in keys]
    runstore.compact(run_dir, final + kept)
    if logger.enabled and logger.failures:
        notices.append(f"PromptLayer: {logger.failures} logging call(s) failed; see the warnings above")
    for p in providers:
        if getattr(p, "unreachable", None):
            notices.append(f"{p.name}: {p.unreachable}")

    summary = summarise(run_dir, prepared, providers, active, final, weights, thresholds, notices, scorers)
    runstore.write_json(run_dir / runstore.SUMMARY_FILE, summary)
    from evals.report import write_reports

    write_reports(run_dir, summary, final)
    return summary


def _run_provider(provider: Provider, rows: list[EvalRow], scorers: list[Scorer], spec: EvalSpec, run_dir: Path,
                  latest: dict, weights: dict, thresholds: dict, bar, logger: PromptLayerLogger, on_progress=None) -> None:
    to_generate, to_rescore = [], []
    for row in rows:
        rec = latest.get((provider.name, row.key))
        if rec is None or rec.get("error"):
            to_generate.append(row)
        elif any(s.name not in rec["scores"] and s.name not in rec.get("score_errors", {}) for s in scorers):
            to_rescore.append((row, rec))
    total = len(to_generate) + len(to_rescore)
    task = bar.add_task(f"{provider.name}", total=total) if bar else None
    done = 0

    def finish(row: EvalRow, output: str | None, error: str | None, latency: float | None, old: dict | None,
               started: float, ended: float) -> None:
        nonlocal done
        if error is None:
            ctx = RowContext(output=output or "", expected=row.expected, prompt=row.prompt, messages=row.messages,
                             row=row.row, latency_s=latency, provider=provider)
            details: dict = {}
            scores, score_errors = score_row(scorers, ctx, old["scores"] if old else None, details=details)
            if old:
                score_errors = {**old.get("score_errors", {}), **score_errors}
            assertions = details.get("asserts", (old or {}).get("assertions"))
        else:
            scores, score_errors, assertions = {}, {}, None
        record = {
            "model": provider.name, "provider": provider.spec.id, "row": row.index, "key": row.key,
            "input": row.prompt, "system": row.system, "expected": row.expected, "output": output,
            "error": error, "latency_s": latency, "scores": scores, "score_errors": score_errors,
            "overall": row_overall(scores, scorers, weights) if error is None else None,
            "passed": row_passed(scores, scorers, thresholds) if error is None else None,
            "created_at": int(time.time()),
        }
        if assertions is not None:
            record["assertions"] = assertions
        runstore.append_record(run_dir, record)
        latest[(provider.name, row.key)] = record
        if logger.enabled and old is None:
            logger.log(record, row.messages, row.row, provider, spec.generation, started, ended, scorers)
        if bar:
            bar.advance(task)
        done += 1
        if on_progress:
            on_progress(provider.name, done, total)

    for row, rec in to_rescore:
        now = time.time()
        finish(row, rec["output"], None, rec.get("latency_s"), rec, now, now)

    # Longest prompts first: rows of similar length share a batch, so little padding is wasted.
    ordered = sorted(to_generate, key=lambda r: len(r.prompt) + len(r.system or ""), reverse=True)
    size = spec.generation.batch_size
    batches = []
    for tools_key in dict.fromkeys(json.dumps(r.tools, sort_keys=True) for r in ordered):  # one batch, one tool set
        group = [r for r in ordered if json.dumps(r.tools, sort_keys=True) == tools_key]
        batches += [group[start:start + size] for start in range(0, len(group), size)]
    for batch in batches:
        t0 = time.time()
        offered = {"tools": batch[0].tools} if batch[0].tools else {}
        results = provider.generate([r.messages for r in batch], spec.generation, **offered)
        t1 = time.time()
        for row, gen in zip(batch, results):
            finish(row, gen.text, gen.error, gen.latency_s, None, t0, t1)


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress_bar(enabled: bool):
    return progress_bar() if enabled else _NoBar()


# ---------------------------------------------------------------- summary

def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(run_dir: Path, prepared: PreparedRun, providers: list[Provider], active: list[Scorer],
              records: list[dict], weights: dict, thresholds: dict, notices: list[str], all_scorers: list[Scorer]) -> dict:
    models = {}
    for provider in providers:
        recs = [r for r in records if r["model"] == provider.name]
        ok = [r for r in recs if not r.get("error")]
        scores = {}
        skipped = {}
        for s in active:
            values = [r["scores"][s.name] for r in ok if r["scores"].get(s.name) is not None]
            if values:
                scores[s.name] = _mean(values)
            elif ok:
                if all(s.name in r["scores"] for r in ok):
                    skipped[s.name] = "not applicable to this model"
                else:
                    first = next((r["score_errors"][s.name] for r in ok if s.name in r.get("score_errors", {})), "")
                    skipped[s.name] = f"failed on every row ({first})"
                    notices.append(f"{s.name} failed on every row of {provider.name}: {first}")
        details = {}
        for s in active:
            if s.corpus_level:
                contexts = [RowContext(output=r["output"] or "", expected=r["expected"], prompt=r["input"], messages=[])
                            for r in ok]
                d = s.corpus(contexts)
                if d:
                    details[s.name] = d
        passes = [r["passed"] for r in ok if r.get("passed") is not None]
        from evals.scorers.assertions import summarise_assertions

        assertion_totals = summarise_assertions(ok)
        models[provider.name] = {
            "scores": scores,
            "errors": len(recs) - len(ok),
            "rows_scored": len(ok),
            "overall": _mean([r["overall"] for r in ok if r.get("overall") is not None]),
            "pass_rate": _mean([1.0 if p else 0.0 for p in passes]),
            "details": details,
            "skipped": skipped,
            "provider": provider.spec.id,
        }
        if assertion_totals is not None:
            models[provider.name]["assertions"] = assertion_totals
    for name, m in models.items():
        for scorer, why in m["skipped"].items():
            if why == "not applicable to this model":
                notices.append(f"{scorer} does not apply to {name}; it is left out of its scores")
    return {
        "run_dir": str(run_dir),
        "rows": len(prepared.rows),
        "models": models,
        "scorers": [{"name": s.name, "higher_is_better": s.higher_is_better, "bounded": s.bounded,
                     "weight": weights.get(s.name, 1.0), "threshold": thresholds.get(s.name),
                     "description": s.description} for s in active],
        "dataset": {"path": prepared.dataset.path, "encoding": prepared.dataset.encoding,
                    "format": prepared.dataset.format, "columns": prepared.dataset.columns,
                    "input_column": prepared.input_column, "expected_column": prepared.expected_column,
                    "template": prepared.template},
        "notices": notices,
        "created_at": int(time.time()),
    }


# ---------------------------------------------------------------- CI gate

def check_fail_under(summary: dict, fail_under: dict[str, float]) -> list[str]:
    """Messages for every model whose mean falls below a bar (`SCORER` = all models, `SCORER@MODEL` = one).

    For lower-is-better scorers (latency, perplexity) the value is a ceiling instead.
    """
    direction = {s["name"]: s["higher_is_better"] for s in summary.get("scorers", [])}
    failures = []
    for key, bar in fail_under.items():
        scorer, _, only_model = key.partition("@")
        if scorer.startswith("assert:") and "asserts" in direction:
            failures += _assertion_failures(summary, scorer, only_model, bar, key)
            continue
        if scorer not in direction:
            raise EvalError(f"--fail-under {key}: this run computed no scorer {scorer!r}; "
                            f"scorers: {', '.join(direction) or '(none)'}.")
        models = summary["models"]
        if only_model and only_model not in models:
            raise EvalError(f"--fail-under {key}: no model {only_model!r} in this run; models: {', '.join(models)}.")
        for name, m in models.items():
            if only_model and name != only_model:
                continue
            value = m["scores"].get(scorer)
            if value is None:
                failures.append(f"{name}: {scorer} has no score (errors: {m['errors']})")
            elif direction[scorer] and value < bar:
                failures.append(f"{name}: {scorer} = {value:.4f} < {bar}")
            elif not direction[scorer] and value > bar:
                failures.append(f"{name}: {scorer} = {value:.4f} > {bar} (lower is better)")
    return failures


def _assertion_failures(summary: dict, scorer: str, only_model: str, bar: float, key: str) -> list[str]:
    """`assert:score` (mean weighted test score) and `assert:<type>` (that type's pass rate) bars."""
    what = scorer.split(":", 1)[1]
    failures = []
    for name, m in summary["models"].items():
        if only_model and name != only_model:
            continue
        totals = m.get("assertions") or {}
        if what == "score":
            value = totals.get("score")
        else:
            if what not in totals.get("by_type", {}):
                raise EvalError(f"--fail-under {key}: no {what!r} assertions in this run; types: "
                                f"{', '.join(totals.get('by_type', {})) or '(none)'}, or assert:score.")
            value = totals["by_type"][what]["pass_rate"]
        if value is None:
            failures.append(f"{name}: {scorer} has no result (assertions could not be evaluated)")
        elif value < bar:
            failures.append(f"{name}: {scorer} = {value:.4f} < {bar}")
    return failures
