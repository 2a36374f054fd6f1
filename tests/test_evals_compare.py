"""Per-row wins/losses/ties and the paired bootstrap interval, on hand-made run folders."""

from __future__ import annotations

import numpy as np
import pytest

from evals import runstore
from evals.compare import bootstrap_ci, compare, compare_records
from evals.errors import EvalError


def rec(model, row, scores, output="o", error=None, prompt=None):
    return {"model": model, "row": row, "key": f"{row}-k", "input": prompt or f"问题 {row}", "expected": "e",
            "output": output, "error": error, "scores": scores}


def write_run(folder, records, scorers=(("exact", True), ("latency", False))):
    folder.mkdir(parents=True)
    for r in records:
        runstore.append_record(folder, r)
    runstore.write_json(folder / runstore.SUMMARY_FILE, {"scorers": [{"name": n, "higher_is_better": h} for n, h in scorers]})
    return folder


def test_bootstrap_is_deterministic_for_a_seed_and_brackets_the_mean():
    diffs = [0.1, 0.4, -0.2, 0.3, 0.0, 0.5, 0.2, -0.1]
    a = bootstrap_ci(diffs, n_boot=1000, seed=7)
    assert a == bootstrap_ci(diffs, n_boot=1000, seed=7)
    assert a[0] < np.mean(diffs) < a[1]
    # The percentile method on the same resamples, computed independently.
    rng = np.random.default_rng(7)
    d = np.asarray(diffs)
    means = d[rng.integers(0, len(d), size=(1000, len(d)))].mean(axis=1)
    assert a == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    assert bootstrap_ci([]) is None


def test_wins_losses_ties_count_for_b_and_respect_direction():
    a = [rec("base", i, {"exact": float(i % 2), "latency": 1.0}) for i in range(20)]
    b = [rec("ft", i, {"exact": 1.0, "latency": 0.5}) for i in range(20)]
    result = compare_records(a, b, {"exact": True, "latency": False}, seed=0)
    exact = result["scorers"]["exact"]
    assert (exact["wins"], exact["ties"], exact["losses"]) == (10, 10, 0)
    assert exact["mean_a"] == 0.5 and exact["mean_b"] == 1.0 and exact["mean_diff"] == 0.5
    assert exact["ci95"][0] > 0 and exact["verdict"] == "B better"
    latency = result["scorers"]["latency"]
    assert (latency["wins"], latency["losses"]) == (20, 0)  # lower latency is a win
    assert latency["mean_diff"] == -0.5 and latency["verdict"] == "B better"
    assert result["paired_rows"] == 20 and len(result["rows"]) == 20


def test_error_rows_are_left_out_and_counted():
    a = [rec("base", 0, {"exact": 1.0}), rec("base", 1, {}, error="boom"), rec("base", 2, {"exact": 0.0})]
    b = [rec("ft", 0, {"exact": 0.0}), rec("ft", 1, {"exact": 1.0}), rec("ft", 2, {"exact": 0.0})]
    result = compare_records(a, b, {"exact": True})
    assert result["paired_rows"] == 2 and result["errors"] == {"a": 1, "b": 0}
    assert (result["scorers"]["exact"]["wins"], result["scorers"]["exact"]["losses"], result["scorers"]["exact"]["ties"]) == (0, 1, 1)


def test_compare_two_run_folders_and_two_models_in_one(tmp_path):
    run_a = write_run(tmp_path / "a", [rec("base", i, {"exact": 0.0, "latency": 1.0}) for i in range(5)])
    run_b = write_run(tmp_path / "b", [rec("ft", i, {"exact": 1.0 if i < 3 else 0.0, "latency": 1.0}) for i in range(5)])
    result = compare(run_a, run_b, seed=1)
    assert result["a"] == {"run_dir": str(run_a), "model": "base"} and result["b"]["model"] == "ft"
    assert result["scorers"]["exact"]["wins"] == 3 and result["scorers"]["exact"]["ties"] == 2
    assert result["scorers"]["latency"]["ties"] == 5
    assert result == compare(run_a, run_b, seed=1)  # reproducible

    both = write_run(tmp_path / "both", [rec("base", i, {"exact": 0.0}) for i in range(3)] +
                     [rec("ft", i, {"exact": 1.0}) for i in range(3)])
    within = compare(both)
    assert within["a"]["model"] == "base" and within["b"]["model"] == "ft"
    assert within["scorers"]["exact"]["wins"] == 3
    reverse = compare(both, model_a="ft", model_b="base")
    assert reverse["scorers"]["exact"]["losses"] == 3


def test_compare_errors_and_notices(tmp_path):
    with pytest.raises(EvalError, match="not an eval run folder"):
        compare(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="holds no scored rows"):
        compare(tmp_path / "empty")
    single = write_run(tmp_path / "single", [rec("base", 0, {"exact": 1.0})])
    with pytest.raises(EvalError, match="only model base"):
        compare(single)
    multi = write_run(tmp_path / "multi", [rec("x", 0, {"exact": 1.0}), rec("y", 0, {"exact": 1.0})])
    with pytest.raises(EvalError, match="say which one to compare with --model-a"):
        compare(multi, single)
    with pytest.raises(EvalError, match="No model 'z'"):
        compare(multi, single, model_a="z")
    other = write_run(tmp_path / "other", [rec("ft", 0, {"exact": 1.0}, prompt="different"), rec("ft", 1, {"exact": 1.0})])
    result = compare(single, other)
    assert any("different prompts" in n for n in result["notices"])
    assert any("only one of the two runs" in n for n in result["notices"])
