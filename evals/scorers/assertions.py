"""promptfoo-style assertions, evaluated per row: the `asserts` scorer.

Each row of a promptfoo suite carries its own list of assertions (`row["__asserts"]`, from
evals.promptfoo). The scorer evaluates every one and returns 1.0 when the test passes, 0.0 when it
fails, None when it cannot tell (an assertion could not be run); the per-assertion results ride on
the returned value (`Scored.details`) and the runner stores them in the row's record.

promptfoo's rules, followed here: a test's score is the weighted mean of its assertion scores
(weight defaults to 1; weight 0 always passes); without a test `threshold` it passes when every
assertion passes, with one when the score reaches it; `not-<type>` negates; `similar` passes at a
cosine of 0.75 or more by default (threshold overrides), using the project's offline embedder;
`llm-rubric` goes to the eval's LLM judge and passes at 0.5 unless a threshold is given; javascript and
python assertions are reported as not supported — never counted as passed or failed.
"""

from __future__ import annotations

import json
import re

from evals.errors import EvalError
from evals.scorers.base import RowContext, Scorer


class Scored:
    """A row's value plus the per-assertion details; the runner stores `.details` and records `.value`."""

    def __init__(self, value: float | None, details: dict):
        self.value = value
        self.details = details


class AssertionError_(Exception):
    """An assertion that cannot be evaluated (unsupported type, no judge)."""


def _as_list(value) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [p.strip() for p in str(value or "").split(",") if p.strip()]


def _json_in(text: str):
    """The first JSON object or array inside `text` (contains-json)."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return decoder.raw_decode(text[i:])[0]
            except ValueError:
                continue
    raise ValueError("no JSON found")


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


class Assertions(Scorer):
    name = "asserts"
    description = "promptfoo assertions of each test (1 = the test passes); per-assertion results in the report."
    needs_expected = False

    def __init__(self, params=None, settings=None):
        super().__init__(params, settings)
        self._judge = None

    # -- one assertion -> (pass, score, reason)
    def _check(self, a: dict, ctx: RowContext) -> tuple[bool, float, str]:
        kind = str(a["type"])
        negate = kind.startswith("not-")
        base = kind[4:] if negate else kind
        passed, score, reason = self._check_base(base, a, ctx)
        if negate:
            passed = not passed
            score = 1.0 - score
            reason = f"not: {reason}"
        return passed, score, reason

    def _check_base(self, kind: str, a: dict, ctx: RowContext) -> tuple[bool, float, str]:
        out = ctx.output or ""
        value = a.get("value")
        if kind == "equals":
            if isinstance(value, (dict, list)):
                try:
                    ok = json.loads(out) == value
                except ValueError:
                    ok = False
            else:
                ok = out == str(value)
            return ok, float(ok), "output equals the value" if ok else f"output is not exactly {str(value)[:80]!r}"
        if kind in ("contains", "icontains"):
            fold = (lambda s: s.casefold()) if kind == "icontains" else (lambda s: s)
            ok = fold(str(value)) in fold(out)
            return ok, float(ok), f"{'found' if ok else 'did not find'} {str(value)[:80]!r}"
        if kind in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
            fold = (lambda s: s.casefold()) if kind.startswith("i") else (lambda s: s)
            needles = _as_list(value)
            hits = [n for n in needles if fold(n) in fold(out)]
            ok = bool(hits) if kind.endswith("any") else len(hits) == len(needles)
            return ok, float(ok), f"found {len(hits)} of {len(needles)}: {', '.join(hits)[:80]}"
        if kind == "starts-with":
            ok = out.startswith(str(value))
            return ok, float(ok), f"output {'starts' if ok else 'does not start'} with {str(value)[:80]!r}"
        if kind == "regex":
            try:
                ok = re.search(str(value), out) is not None
            except re.error as exc:
                raise AssertionError_(f"invalid regex {value!r}: {exc}") from None
            return ok, float(ok), f"pattern {'matched' if ok else 'not found'}"
        if kind in ("is-json", "contains-json"):
            try:
                data = json.loads(out) if kind == "is-json" else _json_in(out)
            except ValueError:
                return False, 0.0, "output is not valid JSON" if kind == "is-json" else "no JSON in the output"
            if value is None or value == "":
                return True, 1.0, "valid JSON"
            return self._schema(value, data)
        if kind == "similar":
            from evals.scorers.semantic import cosine_similarity

            bar = float(a.get("threshold", 0.75))
            best = max(cosine_similarity(out, v) for v in (_as_list(value) if isinstance(value, list) else [str(value)]))
            return best >= bar, best, f"cosine similarity {best:.3f} vs threshold {bar}"
        if kind == "llm-rubric":
            return self._rubric(str(value), a, ctx)
        if kind == "latency":
            if ctx.latency_s is None:
                raise AssertionError_("no latency was measured for this row")
            ms = ctx.latency_s * 1000
            bar = float(a.get("threshold", 0))
            return ms <= bar, float(ms <= bar), f"{ms:.0f} ms vs threshold {bar:g} ms"
        if kind == "levenshtein":
            dist = _levenshtein(out, str(value))
            bar = float(a.get("threshold", 5))
            return dist <= bar, float(dist <= bar), f"edit distance {dist} vs threshold {bar:g}"
        if kind == "assert-set":
            results = [self._one(x, ctx) for x in a.get("assert") or []]
            score, passed = _combine(results, a.get("threshold"))
            if passed is None:
                raise AssertionError_("an assertion in the set could not be evaluated")
            return passed, score, f"{sum(bool(r['pass']) for r in results)} of {len(results)} in the set passed"
        from evals.promptfoo import UNSUPPORTED_ASSERTIONS

        if kind in UNSUPPORTED_ASSERTIONS:
            raise AssertionError_(f"not supported: {UNSUPPORTED_ASSERTIONS[kind]}")
        if kind == "file":
            raise AssertionError_(f"not supported: assertions loaded from files ({value})")
        raise AssertionError_(f"not supported: the promptfoo assertion type {kind!r}")

    def _schema(self, schema, data) -> tuple[bool, float, str]:
        import jsonschema
        import yaml

        if isinstance(schema, str):
            try:
                schema = yaml.safe_load(schema)
            except yaml.YAMLError:
                raise AssertionError_("the is-json schema is neither JSON nor YAML") from None
        try:
            validator = jsonschema.validators.validator_for(schema)(schema)
            errors = list(validator.iter_errors(data))
        except jsonschema.SchemaError as exc:
            raise AssertionError_(f"the JSON schema is invalid ({exc.message})") from None
        if errors:
            return False, 0.0, f"JSON does not match the schema: {errors[0].message[:80]}"
        return True, 1.0, "valid JSON matching the schema"

    def _rubric(self, rubric: str, a: dict, ctx: RowContext) -> tuple[bool, float, str]:
        from evals.scorers.judge import LlmJudge

        if self._judge is None:
            self._judge = LlmJudge({}, self.settings)
        missing = self._judge.unavailable_reason()
        if missing:
            raise AssertionError_("needs an LLM judge: set `judge: {base_url, model}` in the config or "
                                  "TUNEPILOT_OPENAI_BASE_URL and TUNEPILOT_OPENAI_MODEL")
        self._judge.rubric = rubric
        grade = self._judge.score(ctx)
        bar = float(a.get("threshold", 0.5))
        return grade >= bar, grade, f"judge grade {grade:.2f} vs threshold {bar}"

    def _one(self, a: dict, ctx: RowContext) -> dict:
        entry = {"type": a["type"], "value": a.get("value"), "weight": float(a.get("weight", 1.0)),
                 "threshold": a.get("threshold"), "metric": a.get("metric"), "pass": None, "score": None, "reason": ""}
        if entry["weight"] == 0:
            entry.update({"pass": True, "score": 1.0, "reason": "weight 0 always passes"})
            return entry
        try:
            ok, score, reason = self._check(a, ctx)
            entry.update({"pass": bool(ok), "score": round(float(score), 4), "reason": reason})
        except AssertionError_ as exc:
            entry["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - the judge endpoint failing etc.: recorded on this assertion only
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        if a.get("ignored"):
            entry["ignored_keys"] = a["ignored"]
        return entry

    def score(self, ctx: RowContext) -> Scored:  # type: ignore[override]
        asserts = ctx.row.get("__asserts")
        if asserts is None:
            raise EvalError("the asserts scorer needs a promptfoo config (tests with assert)")
        results = [self._one(a, ctx) for a in asserts]
        threshold = ctx.row.get("__threshold")
        score, passed = _combine(results, threshold)
        details = {"pass": passed, "score": score, "threshold": threshold, "results": results,
                   "test": ctx.row.get("__test"), "description": ctx.row.get("__description") or None}
        if not results:
            details["pass"] = None
            return Scored(None, details)
        return Scored(None if passed is None else (1.0 if passed else 0.0), details)


def _combine(results: list[dict], threshold) -> tuple[float | None, bool | None]:
    """Weighted score over assertions; pass = all pass (or score >= threshold); None if any could not run."""
    if any(r.get("error") for r in results if r["weight"] > 0):
        done = [r for r in results if r["score"] is not None]
        weight = sum(r["weight"] for r in done)
        partial = sum(r["weight"] * r["score"] for r in done) / weight if weight else None
        return (round(partial, 4) if partial is not None else None), None
    weight = sum(r["weight"] for r in results)
    score = sum(r["weight"] * r["score"] for r in results) / weight if weight else 1.0
    passed = score >= float(threshold) if threshold not in (None, "") else all(r["pass"] for r in results)
    return round(score, 4), passed


def summarise_assertions(records: list[dict]) -> dict | None:
    """Per-model totals of the per-row assertion results: tests passed and, per type, passes / fails / errors."""
    rows = [r["assertions"] for r in records if r.get("assertions")]
    if not rows:
        return None
    by_type: dict[str, dict] = {}
    for row in rows:
        for item in row["results"]:
            slot = by_type.setdefault(item["type"], {"passed": 0, "failed": 0, "errors": 0})
            if item.get("error"):
                slot["errors"] += 1
            elif item["pass"]:
                slot["passed"] += 1
            else:
                slot["failed"] += 1
    for slot in by_type.values():
        judged = slot["passed"] + slot["failed"]
        slot["pass_rate"] = slot["passed"] / judged if judged else None
    decided = [r for r in rows if r["pass"] is not None]
    scores = [r["score"] for r in rows if r.get("score") is not None]
    return {"tests": len(rows), "tests_passed": sum(1 for r in decided if r["pass"]),
            "tests_failed": sum(1 for r in decided if not r["pass"]), "tests_undecided": len(rows) - len(decided),
            "pass_rate": (sum(1 for r in decided if r["pass"]) / len(decided)) if decided else None,
            "score": sum(scores) / len(scores) if scores else None, "by_type": by_type}
