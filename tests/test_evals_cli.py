"""`tunepilot eval ...` through typer: JSON shapes, exit codes (--fail-under -> 1, user mistakes -> 2)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tunepilot.cli.main import app

runner = CliRunner()


def write_csv(path, text="question,answer\n你好吗？,很好\nHello?,hi\n"):
    path.write_bytes(text.encode("gbk"))
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.integration
def test_eval_run_json_shape_and_fail_under(tmp_path, tiny_model_dir):
    data = write_csv(tmp_path / "q.csv")
    out = tmp_path / "run"
    result = invoke("eval", "run", "--dataset", data, "--model", tiny_model_dir, "--scorer", "exact", "--scorer", "chrf",
                    "--max-new-tokens", 3, "--batch-size", 2, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert doc["run_dir"] == str(out) and doc["rows"] == 2
    model = doc["models"][str(tiny_model_dir)]
    assert set(model["scores"]) == {"exact", "chrf"} and model["errors"] == 0
    assert (out / "report.html").exists() and (out / "results.csv").exists()

    # A bar the tiny (untrained) model cannot reach -> exit 1, and the JSON says why.
    failing = invoke("eval", "run", "--dataset", data, "--model", tiny_model_dir, "--scorer", "exact",
                     "--out", out, "--fail-under", "exact=0.5", "--json")
    assert failing.exit_code == 1
    doc = json.loads(failing.stdout)
    assert doc["fail_under"]["passed"] is False and "exact = 0.0000 < 0.5" in doc["fail_under"]["failures"][0]
    assert "fail-under:" in failing.stderr

    passing = invoke("eval", "run", "--dataset", data, "--model", tiny_model_dir, "--scorer", "exact",
                     "--out", out, "--fail-under", "exact=0")
    assert passing.exit_code == 0, passing.output
    assert "report:" in passing.stdout


def test_eval_run_user_errors_exit_2_with_one_line(tmp_path, tiny_model_dir):
    data = write_csv(tmp_path / "q.csv")
    result = invoke("eval", "run", "--dataset", data, "--model", tiny_model_dir, "--input-column", "prompt")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Dataset {data} has no column 'prompt' (input); columns found: 'question', 'answer'. "
        "Pick existing columns with --input-column/--expected-column or the config file."]
    result = invoke("eval", "run", "--dataset", data, "--model", tiny_model_dir, "--scorer", "bogus")
    assert result.exit_code == 2 and "Unknown scorer 'bogus'" in result.stderr
    result = invoke("eval", "run", "--dataset", tmp_path / "missing.csv", "--model", tiny_model_dir)
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = invoke("eval", "run", "--dataset", data, "--model", tiny_model_dir, "--fail-under", "exact")
    assert result.exit_code == 2 and "not SCORER=VALUE" in result.stderr


@pytest.mark.integration
def test_eval_run_from_config_file(tmp_path, tiny_model_dir):
    write_csv(tmp_path / "q.csv")
    (tmp_path / "eval.yaml").write_text(
        f"dataset: q.csv\ntemplate: '请回答：{{question}}'\nproviders: ['{tiny_model_dir}']\n"
        "generation: {max_new_tokens: 2}\nscorers: [exact, {name: rouge_l, threshold: 0.5}]\n", encoding="utf-8")
    result = invoke("eval", "run", "--config", tmp_path / "eval.yaml", "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["dataset"]["template"] == "请回答：{question}"
    assert doc["models"][str(tiny_model_dir)]["pass_rate"] is not None
    records = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["input"] for r in records} == {"请回答：你好吗？", "请回答：Hello?"}


@pytest.mark.integration
def test_eval_compare_json_and_table(tmp_path, tiny_model_dir):
    from trainer.models import registry as models

    models.register_local("tiny-copy", tiny_model_dir)
    data = write_csv(tmp_path / "q.csv")
    out = tmp_path / "run"
    result = invoke("eval", "run", "--dataset", data, "--model", tiny_model_dir, "--model", "tiny-copy",
                    "--scorer", "exact", "--scorer", "rouge_l", "--max-new-tokens", 3, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    compared = invoke("eval", "compare", out, "--json")
    assert compared.exit_code == 0, compared.output
    doc = json.loads(compared.stdout)
    assert doc["a"]["model"] == str(tiny_model_dir) and doc["b"]["model"] == "tiny-copy"
    assert doc["scorers"]["exact"]["ties"] == 2 and doc["scorers"]["exact"]["ci95"] == [0.0, 0.0]
    table = invoke("eval", "compare", out)
    assert table.exit_code == 0 and "wins" in table.stdout and "95% CI" in table.stdout
    missing = invoke("eval", "compare", tmp_path / "nope")
    assert missing.exit_code == 2 and "not an eval run folder" in missing.stderr


def test_export_import_promptlayer_csv(tmp_path):
    data = write_csv(tmp_path / "q.csv")
    exported = invoke("eval", "export", data, "--out", tmp_path / "pl.csv", "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout) == {"out": str(tmp_path / "pl.csv"), "rows": 2, "source_encoding": "gbk"}
    imported = invoke("eval", "import", tmp_path / "pl.csv", "--out", tmp_path / "back.jsonl", "--json")
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["columns"] == ["question", "expected_output"]
    rows = [json.loads(x) for x in (tmp_path / "back.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows == [{"question": "你好吗？", "expected_output": "很好"}, {"question": "Hello?", "expected_output": "hi"}]


def test_scorers_listing():
    result = invoke("eval", "scorers", "--json")
    assert result.exit_code == 0
    names = [s["name"] for s in json.loads(result.stdout)["scorers"]]
    assert "rouge_l" in names and "llm_judge" in names
