"""Assistant benchmark: answer latency, citation precision, "not covered" behaviour, config extraction.

    TUNEPILOT_HOME=/tmp/bench-home python bench/assistant.py                # extractive (+ openai if configured)
    python bench/assistant.py --local --local-model /path/to/gemma-3-270m   # also the local engine, a few questions

Prints four tables:
1. latency p50/p90 per engine over the question set (the index is warmed first, so the figures
   are per-question cost, not the one-time indexing);
2. answers: grounded rate on covered questions, correct refusals on questions the corpus cannot
   answer, expected-source hit rate, and citation precision = share of citations whose chunk
   supports the sentence, judged by the guard's lexical test and, separately, by MiniLM similarity
   (an independent judge: >= 0.5 cosine between the sentence and the cited chunk);
3. the guard against a hand-labelled gold set of (sentence, chunk, supported) pairs;
4. config extraction accuracy per slot on bench/data/assistant_config_requests.jsonl (44 requests,
   half Chinese; the parser was developed against it) and on assistant_config_heldout.jsonl (12
   requests in new phrasings, written after the parser was frozen). First measurement on the
   held-out set: en 25/29 slots (missed "two passes", "r 32", "16 accumulation steps", "the same
   defaults OpenAI uses"), zh 29/29; the parser was then extended for those phrasings, so later
   held-out figures are no longer blind;
5. the planner (issue 13: understand -> plan -> fit, with conversation turns) on
   bench/data/requests_frozen.jsonl (152 requests, 76 Chinese, written before the new reader and
   never tuned on) and bench/data/requests_dev.jsonl (the set it was developed on): per-field
   accuracy, "explicit values kept or flagged", "fits when a GPU was named" (whenever the smallest
   setting of the chosen method, keeping the user's values, fits by the estimator), multi-turn edits
   applied, and planning time p50/p95 per request against a baseline in the same run (one
   memory.estimate of the same final config). First measurement on the frozen set (2026-12-02, before
   any change made after looking at its results): kept-or-flagged 149/152 (missed: "A10G" twice, which
   the GPU catalogue read as "A" + 10 GB, and a full-width colon quoted in its normalised form), fits
   40/40, multi-turn edits 26/26, p95 104 ms. Both were fixed (with dev-set cases D026 and D123), so
   later frozen figures on those three requests are no longer blind. After that, the reader was
   extended from the older request sets above and ad-hoc phrasings (numbers nothing read are named
   as unread, "train for 1000 steps", "2 A100", "ga 4", "1024 ctx"); 2026-12-02 07:30: frozen 152/152
   kept or flagged, fits 42/42, edits 26/26, p95 70 ms (one estimate: p95 9-17 ms); dev 49/49, 8/8, 10/10.

    python bench/assistant.py --planner-only     # just table 5 (no index, no embedder)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
console = Console(width=130)


def load_jsonl(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_engine(engine: str, questions: list[dict], **options) -> tuple[list[float], list]:
    from assistant.answer import answer

    times, results = [], []
    for row in questions:
        start = time.perf_counter()
        result = answer(row["question"], engine=engine, **options)
        times.append(time.perf_counter() - start)
        results.append(result)
    return times, results


def citation_judgements(results) -> tuple[int, int, int]:
    """(citations, supported by the lexical guard, supported by MiniLM >= 0.5) over all answers."""
    import re

    from assistant.citations import (
        SUPPORT_THRESHOLD,
        cosine,
        lexical_support,
        split_answer_sentences,
        strip_markers,
    )
    from knowledge.embeddings import get_embedder

    embedder = get_embedder()
    total = lexical_ok = semantic_ok = 0
    for result in results:
        if not result.grounded:
            continue
        by_n = {c.n: c.text for c in result.citations}
        for sentence in split_answer_sentences(result.answer):
            for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", sentence):
                for n in (int(x) for x in group.split(",")):
                    if n not in by_n:
                        continue
                    bare = strip_markers(sentence).strip()
                    total += 1
                    lexical_ok += lexical_support(bare, by_n[n]) >= SUPPORT_THRESHOLD
                    a, b = embedder.embed([bare, by_n[n]])
                    semantic_ok += cosine(list(map(float, a)), list(map(float, b))) >= 0.5
    return total, lexical_ok, semantic_ok


def answers_table(engine_rows: dict[str, tuple[list[dict], list[float], list]]) -> None:
    lat = Table("engine", "questions", "p50 s", "p90 s", "mean s", title="Answer latency (index warm)")
    quality = Table("engine", "grounded (covered)", "refused (not covered)", "expected source cited",
                    "citations", "precision: guard", "precision: MiniLM", title="Answers")
    for engine, (questions, times, results) in engine_rows.items():
        lat.add_row(engine, str(len(times)), f"{statistics.median(times):.3f}", f"{percentile(times, 0.9):.3f}",
                    f"{statistics.mean(times):.3f}")
        covered = [(q, r) for q, r in zip(questions, results) if q["covered"]]
        uncovered = [(q, r) for q, r in zip(questions, results) if not q["covered"]]
        grounded = sum(r.grounded for _, r in covered)
        refused = sum(not r.grounded for _, r in uncovered)
        with_source = [(q, r) for q, r in covered if q.get("expect_source")]
        source_hits = sum(any(c.source.endswith(q["expect_source"]) for c in r.citations) for q, r in with_source)
        total, lex, sem = citation_judgements(results)
        quality.add_row(
            engine, f"{grounded}/{len(covered)}", f"{refused}/{len(uncovered)}", f"{source_hits}/{len(with_source)}",
            str(total), f"{lex / total:.2f}" if total else "-", f"{sem / total:.2f}" if total else "-",
        )
    console.print(lat)
    console.print(quality)


def guard_gold_table() -> None:
    from assistant.citations import SUPPORT_THRESHOLD, lexical_support, support
    from knowledge.embeddings import get_embedder

    embedder = get_embedder()

    def embed(texts):
        return [list(map(float, v)) for v in embedder.embed(list(texts))]

    rows = load_jsonl("assistant_citation_gold.jsonl")
    table = Table("judge", "pairs", "accuracy", "precision (kept ones supported)", "recall (supported kept)",
                  title="Citation guard vs. hand-labelled gold")
    for name, judge in (("lexical", lambda s, c: lexical_support(s, c)), ("lexical+MiniLM", lambda s, c: support(s, c, embed))):
        tp = fp = fn = tn = 0
        for row in rows:
            keep = judge(row["sentence"], row["chunk"]) >= SUPPORT_THRESHOLD
            if keep and row["supported"]:
                tp += 1
            elif keep:
                fp += 1
            elif row["supported"]:
                fn += 1
            else:
                tn += 1
        table.add_row(name, str(len(rows)), f"{(tp + tn) / len(rows):.2f}", f"{tp / max(1, tp + fp):.2f}",
                      f"{tp / max(1, tp + fn):.2f}")
    console.print(table)


def _same(predicted, gold) -> bool:
    if isinstance(gold, bool) or isinstance(predicted, bool):
        return predicted == gold
    if isinstance(gold, (int, float)) and isinstance(predicted, (int, float)):
        return abs(float(predicted) - float(gold)) <= 1e-9 * max(1.0, abs(float(gold)))
    return predicted == gold


def config_table(file_name: str, label: str) -> None:
    from assistant.config_from_text import config_from_text
    from assistant.slots import parse_slots

    rows = load_jsonl(file_name)
    per_slot: dict[str, list[int]] = {}  # slot -> [correct, gold count, spurious]
    per_lang = {"en": [0, 0], "zh": [0, 0]}
    exact = {"en": [0, 0], "zh": [0, 0]}
    conflicts_flagged = conflicts = 0
    start = time.perf_counter()
    for row in rows:
        slots = parse_slots(row["text"])
        values = slots.values
        all_right = True
        for slot, gold in row["gold"].items():
            if slot == "conflict":
                conflicts += 1
                errors = config_from_text(row["text"])["validation"]["errors"]
                flagged = any(e["rule_id"] == "request.conflicting-methods" for e in errors)
                conflicts_flagged += flagged
                ok = flagged
            else:
                ok = _same(values.get(slot), gold)
            stats = per_slot.setdefault(slot, [0, 0, 0])
            stats[0] += ok
            stats[1] += 1
            per_lang[row["lang"]][0] += ok
            per_lang[row["lang"]][1] += 1
            all_right &= bool(ok)
        for slot in values:
            if slot not in row["gold"] and not (slot == "method" and "conflict" in row["gold"]):
                per_slot.setdefault(slot, [0, 0, 0])[2] += 1
                all_right = False
        exact[row["lang"]][0] += all_right
        exact[row["lang"]][1] += 1
    elapsed = time.perf_counter() - start
    table = Table("slot", "correct / gold", "accuracy", "spurious", title=f"Config extraction per slot: {label} ({len(rows)} requests)")
    for slot in sorted(per_slot, key=lambda s: -per_slot[s][1]):
        correct, count, spurious = per_slot[slot]
        table.add_row(slot, f"{correct}/{count}", f"{correct / count:.2f}" if count else "-", str(spurious))
    console.print(table)
    summary = Table("language", "slot accuracy", "requests fully right", title=f"Config extraction by language: {label}")
    for lang in ("en", "zh"):
        c, n = per_lang[lang]
        e, m = exact[lang]
        summary.add_row(lang, f"{c}/{n} = {c / max(1, n):.2f}", f"{e}/{m}")
    console.print(summary)
    console.print(f"contradictions flagged: {conflicts_flagged}/{conflicts}; deterministic parse + build: "
                  f"{1000 * elapsed / len(rows):.1f} ms per request (including validation and memory estimate for conflicts)")


# ------------------------------------------------------------------------------- the planner (issue 13)

def _flat(config: dict) -> dict:
    return {f"{sec}.{key}": value for sec, keys in config.items() if isinstance(keys, dict) for key, value in keys.items()}


def _value_ok(result: dict, name: str, gold) -> bool:
    """Is the expected value in the final result? (model.size and effective batch are planner fields)."""
    flat = _flat(result["config"])
    understood = {u["field"]: u["value"] for u in result["understood"]}
    if gold is None:  # after "start over": the earlier value must be gone
        return name not in understood
    if name == "model.size":
        return understood.get(name) == gold
    if name == "training.effective_batch":
        return flat["training.batch_size"] * flat["training.gradient_accumulation_steps"] == gold
    return _same(flat.get(name), gold)


def _flagged(result: dict, name: str) -> bool:
    """Named to the user as a problem: a validation error on the field, or unread / contradictory text about it."""
    findings = result["validation"]["errors"] + result["validation"]["warnings"]
    return _errors_on(result, name) or any(f.get("field") == name and f["rule_id"] in ("request.unread", "request.conflicting-values")
                                           for f in findings)


def _errors_on(result: dict, name: str) -> bool:
    return any(f.get("field") == name for f in result["validation"]["errors"])


def _fits_check(result: dict):
    """(gpu named, possible, planned fits): possible = the smallest setting of the chosen method that
    keeps the user's values fits the target by the estimator (no margin)."""
    from assistant.fit import smallest
    from assistant.plan import proxy_for_size, target_for
    from trainer.planning.config_io import parse_config_lenient
    from trainer.planning.memory import EstimateError, estimate

    if result["target"]["kind"] == "machine":
        return False, None, None
    values = {u["field"]: u["value"] for u in result["understood"]}
    target = target_for(values)
    data = json.loads(json.dumps(result["config"]))
    if not data["model"].get("base_model") and "model.size" in values:
        data["model"]["base_model"] = proxy_for_size(values["model.size"])
    cfg, _ = parse_config_lenient(data)
    pinned = set(values) | {"method.type"}
    try:
        low = smallest(cfg, pinned, target.env, 256)
        possible = bool(estimate(low, env=target.env).fits)
        planned = bool(estimate(cfg, env=target.env).fits)
    except (EstimateError, ValueError):
        return True, None, None
    return True, possible, planned


def planner_table(file_name: str, label: str) -> dict:
    from assistant.config_from_text import config_from_text
    from trainer.planning.config_io import parse_config_lenient
    from trainer.planning.memory import EstimateError, estimate

    rows = load_jsonl(file_name)
    config_from_text("fine-tune gemma-3-270m on data.jsonl on an RTX 4090")  # warm: torch import, catalogue
    per_field: dict[str, list[int]] = {}
    kept = {"en": [0, 0], "zh": [0, 0]}
    fits = [0, 0]
    edits = [0, 0]
    times, baseline, misses = [], [], []
    for row in rows:
        start = time.perf_counter()
        result = config_from_text(row["turns"])
        times.append(time.perf_counter() - start)
        cfg, _ = parse_config_lenient(result["config"])
        start = time.perf_counter()
        try:
            estimate(cfg)
        except (EstimateError, ValueError):
            pass
        baseline.append(time.perf_counter() - start)
        ok_all = True
        for name, gold in row.get("expect", {}).items():
            ok = _value_ok(result, name, gold)
            stats = per_field.setdefault(name, [0, 0])
            stats[0] += ok
            stats[1] += 1
            flagged = name in row.get("flag", []) and _errors_on(result, name)
            if not ok and not (flagged or _flagged(result, name)):
                ok_all = False
                misses.append(f"{row['id']} {name}: expected {gold!r}, got {_flat(result['config']).get(name)!r}")
        for name in row.get("flag", []):
            if not _errors_on(result, name):
                ok_all = False
                misses.append(f"{row['id']} {name}: expected a validation error")
        for piece in row.get("unread", []):
            if not any(piece in u or u in piece for u in result["unread"]):
                ok_all = False
                misses.append(f"{row['id']} unread {piece!r} not named (unread: {result['unread']})")
        if row.get("conflict") and not any(e["rule_id"].startswith("request.conflicting") for e in result["validation"]["errors"]):
            ok_all = False
            misses.append(f"{row['id']} conflict not reported")
        for name in row.get("missing", []):
            if name not in result["missing"]:
                ok_all = False
                misses.append(f"{row['id']} {name} not reported missing")
        kept[row["lang"]][0] += ok_all
        kept[row["lang"]][1] += 1
        if row.get("edits"):
            edits[1] += 1
            applied = all(_value_ok(result, n, v) for n, v in row["edits"].items())
            edits[0] += applied
            if not applied:
                misses.append(f"{row['id']} multi-turn edit not applied")
        named, possible, planned = _fits_check(result)
        if named and possible:
            fits[1] += 1
            fits[0] += bool(planned)
            if not planned:
                misses.append(f"{row['id']} a config of the chosen method fits but the plan does not")
    table = Table("field", "correct / expected", "accuracy", title=f"Planner per-field accuracy: {label} ({len(rows)} requests)")
    for name in sorted(per_field, key=lambda n: -per_field[n][1]):
        c, n = per_field[name]
        table.add_row(name, f"{c}/{n}", f"{c / n:.2f}")
    console.print(table)
    total_ok = kept["en"][0] + kept["zh"][0]
    summary = Table("metric", "value", "target", title=f"Planner: {label}")
    summary.add_row("explicit values kept or flagged (requests)",
                    f"{total_ok}/{len(rows)} = {total_ok / len(rows):.3f} (en {kept['en'][0]}/{kept['en'][1]}, zh {kept['zh'][0]}/{kept['zh'][1]})", ">= 0.98")
    summary.add_row("fits when a GPU was named and a config of the method can", f"{fits[0]}/{fits[1]}", "100%")
    summary.add_row("multi-turn edits applied", f"{edits[0]}/{edits[1]}", ">= 0.95")
    summary.add_row("planning time per request p50 / p95", f"{1000 * statistics.median(times):.0f} / {1000 * percentile(times, 0.95):.0f} ms", "p95 < 1000 ms")
    summary.add_row("baseline: one memory.estimate p50 / p95", f"{1000 * statistics.median(baseline):.1f} / {1000 * percentile(baseline, 0.95):.1f} ms", "")
    console.print(summary)
    for miss in misses:
        console.print(f"  miss: {miss}", markup=False, style="dim")
    return {"kept": total_ok / len(rows), "fits": fits, "edits": edits, "p95_s": percentile(times, 0.95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planner-only", action="store_true", help="Only the planner table (no index, no embedder).")
    parser.add_argument("--collection", default="default")
    parser.add_argument("--local", action="store_true", help="Also time the local engine (a few questions).")
    parser.add_argument("--local-model", default=None, help="Model for the local engine (default: gemma-3-270m).")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="Generation budget of the LLM engines.")
    parser.add_argument("--llm-questions", type=int, default=4,
                        help="How many covered questions the LLM engines (openai, local) answer; CPU generation is slow.")
    args = parser.parse_args()
    if args.planner_only:
        planner_table("requests_frozen.jsonl", "frozen set")
        planner_table("requests_dev.jsonl", "dev set")
        return

    from knowledge.retrieval import search

    questions = load_jsonl("assistant_questions.jsonl")
    console.print(f"TUNEPILOT_HOME={os.environ.get('TUNEPILOT_HOME', '.tunepilot')}; warming the index...", style="dim")
    start = time.perf_counter()
    search("warm up", k=1, collection=args.collection)
    console.print(f"index ready in {time.perf_counter() - start:.1f}s", style="dim")

    engines: dict[str, tuple[list[dict], list[float], list]] = {}
    times, results = run_engine("extractive", questions, collection=args.collection)
    engines["extractive"] = (questions, times, results)
    # LLM engines answer a few covered questions and two the corpus cannot answer.
    llm_subset = [q for q in questions if q["covered"]][: args.llm_questions] + [q for q in questions if not q["covered"]][:2]
    if os.environ.get("TUNEPILOT_OPENAI_BASE_URL") or os.environ.get("TUNEPILOT_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY"):
        options = {"max_tokens": args.max_new_tokens}
        run_engine("openai", llm_subset[:1], collection=args.collection, **options)  # the server loads its model once
        times, results = run_engine("openai", llm_subset, collection=args.collection, **options)
        engines["openai"] = (llm_subset, times, results)
    else:
        console.print("openai engine: no endpoint configured (TUNEPILOT_OPENAI_BASE_URL), skipped", style="dim")
    if args.local:
        options = {"max_new_tokens": args.max_new_tokens, **({"model": args.local_model} if args.local_model else {})}
        run_engine("local", llm_subset[:1], collection=args.collection, **options)  # load the model once
        times, results = run_engine("local", llm_subset, collection=args.collection, **options)
        engines["local"] = (llm_subset, times, results)
    answers_table(engines)
    guard_gold_table()
    config_table("assistant_config_requests.jsonl", "development set")
    # Written after the parser was frozen, in new phrasings: the honest generalisation figure.
    config_table("assistant_config_heldout.jsonl", "held-out set")
    planner_table("requests_frozen.jsonl", "frozen set")
    planner_table("requests_dev.jsonl", "dev set")


if __name__ == "__main__":
    main()
