"""Compare two models row by row: wins/losses/ties per scorer and a paired bootstrap 95% interval.

Works on two run folders (e.g. the base model's run and the fine-tuned model's run on the same
dataset) or on two models inside one run. Rows are paired by their position in the dataset; rows
that errored on either side are left out of that pairing and counted.

Wins and losses are counted for B against A (B is the candidate, e.g. the fine-tuned model): a win is
a row where B scores better — higher, or lower for latency/perplexity. The interval is a percentile
bootstrap of the mean per-row difference B - A, resampling rows with replacement (paired, so each
resample keeps a row's two scores together; see Koehn 2004, "Statistical Significance Tests for
Machine Translation Evaluation"). An interval that excludes 0 means the difference is unlikely to be
an accident of which rows were in the test set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evals import runstore
from evals.errors import EvalError

TIE_TOLERANCE = 1e-9


def bootstrap_ci(diffs: list[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `diffs` (deterministic for a given seed)."""
    if not diffs:
        return None
    d = np.asarray(diffs, dtype=float)
    if len(d) == 1:
        return float(d[0]), float(d[0])
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def _directions(*summaries: dict) -> dict[str, bool]:
    from evals.scorers import SCORERS

    out = {name: cls.higher_is_better for name, cls in SCORERS.items()}
    for summary in summaries:
        for s in summary.get("scorers", []):
            out[s["name"]] = s["higher_is_better"]
    return out


def compare_records(records_a: list[dict], records_b: list[dict], directions: dict[str, bool] | None = None,
                    n_boot: int = 2000, seed: int = 0) -> dict:
    """The comparison of two lists of per-row records (one model each)."""
    directions = directions or _directions()
    by_row_a = {r["row"]: r for r in records_a}
    by_row_b = {r["row"]: r for r in records_b}
    common = sorted(set(by_row_a) & set(by_row_b))
    ok = [i for i in common if not by_row_a[i].get("error") and not by_row_b[i].get("error")]
    names: list[str] = []
    for rec in (by_row_a.get(i) for i in ok):
        for name in rec["scores"]:
            if name not in names:
                names.append(name)
    scorers = {}
    for name in names:
        pairs = [(by_row_a[i]["scores"].get(name), by_row_b[i]["scores"].get(name)) for i in ok]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            continue
        higher = directions.get(name, True)
        diffs = [b - a for a, b in pairs]
        signed = diffs if higher else [-x for x in diffs]  # positive = B better
        ci = bootstrap_ci(diffs, n_boot=n_boot, seed=seed)
        mean_diff = float(np.mean(diffs))
        improvement = ci is not None and ((ci[0] > 0) if higher else (ci[1] < 0))
        regression = ci is not None and ((ci[1] < 0) if higher else (ci[0] > 0))
        scorers[name] = {
            "n": len(pairs),
            "mean_a": float(np.mean([a for a, _ in pairs])),
            "mean_b": float(np.mean([b for _, b in pairs])),
            "mean_diff": mean_diff,
            "ci95": list(ci) if ci else None,
            "wins": sum(1 for x in signed if x > TIE_TOLERANCE),
            "losses": sum(1 for x in signed if x < -TIE_TOLERANCE),
            "ties": sum(1 for x in signed if abs(x) <= TIE_TOLERANCE),
            "higher_is_better": higher,
            "verdict": "B better" if improvement else ("A better" if regression else "no clear difference"),
        }
    rows = []
    for i in common:
        a, b = by_row_a[i], by_row_b[i]
        rows.append({"row": i, "input": a.get("input"), "expected": a.get("expected"),
                     "output_a": a.get("output"), "output_b": b.get("output"),
                     "error_a": a.get("error"), "error_b": b.get("error"),
                     "scores_a": a.get("scores", {}), "scores_b": b.get("scores", {})})
    notices = []
    differing = sum(1 for i in common if by_row_a[i].get("input") != by_row_b[i].get("input"))
    if differing:
        notices.append(f"{differing} paired row(s) had different prompts in A and B; check both runs used the same dataset and template")
    only = len(set(by_row_a) ^ set(by_row_b))
    if only:
        notices.append(f"{only} row(s) exist in only one of the two runs and were left out")
    return {
        "paired_rows": len(ok),
        "errors": {"a": sum(1 for i in common if by_row_a[i].get("error")),
                   "b": sum(1 for i in common if by_row_b[i].get("error"))},
        "scorers": scorers,
        "rows": rows,
        "notices": notices,
        "n_boot": n_boot,
        "seed": seed,
    }


def _models_in(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in records))


def _pick_model(records: list[dict], wanted: str | None, run: Path, flag: str) -> str:
    models = _models_in(records)
    if wanted:
        if wanted not in models:
            raise EvalError(f"No model {wanted!r} in {run}; models there: {', '.join(models)}.")
        return wanted
    if len(models) == 1:
        return models[0]
    raise EvalError(f"{run} has models {', '.join(models)}; say which one to compare with {flag}.")


def compare(run_a: str | Path, run_b: str | Path | None = None, model_a: str | None = None, model_b: str | None = None,
            n_boot: int = 2000, seed: int = 0) -> dict:
    """Compare run B against run A (or, with run_b None, the second model of run A against its first)."""
    path_a = Path(run_a).expanduser()
    summary_a, records_a = runstore.load_run(path_a)
    if run_b is None or Path(run_b).expanduser().resolve() == path_a.resolve():
        path_b, summary_b, records_b = path_a, summary_a, records_a
        models = _models_in(records_a)
        if len(models) < 2:
            raise EvalError(f"{path_a} has only model {models[0]}; pass a second run folder to compare against.")
        # Within one run the default is its first two models in report order (base first, by convention).
        model_a = _pick_model(records_a, model_a, path_a, "--model-a") if model_a else models[0]
        others = [m for m in models if m != model_a]
        model_b = _pick_model(records_a, model_b, path_a, "--model-b") if model_b else others[0]
    else:
        path_b = Path(run_b).expanduser()
        summary_b, records_b = runstore.load_run(path_b)
        model_a = _pick_model(records_a, model_a, path_a, "--model-a")
        model_b = _pick_model(records_b, model_b, path_b, "--model-b")
    result = compare_records([r for r in records_a if r["model"] == model_a],
                             [r for r in records_b if r["model"] == model_b],
                             _directions(summary_a, summary_b), n_boot=n_boot, seed=seed)
    return {"a": {"run_dir": str(path_a), "model": model_a}, "b": {"run_dir": str(path_b), "model": model_b}, **result}
