"""promptfoo configs through the real `tunepilot eval run --config` on the tiny model: per-assertion results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunepilot.cli.main import app

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures" / "promptfoo"


@pytest.fixture(autouse=True)
def _no_ambient_judge(monkeypatch):
    """llm-rubric must find no judge unless a test configures one."""
    for var in ("TUNEPILOT_OPENAI_BASE_URL", "TUNEPILOT_OPENAI_MODEL", "TUNEPILOT_OPENAI_API_KEY", "OPENAI_BASE_URL",
                "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def _run(args):
    result = CliRunner().invoke(app, ["eval", "run", *args, "--json", "--max-new-tokens", "8"])
    return result


UPSTREAM = Path(__file__).parent / "fixtures" / "promptfoo_upstream"  # promptfoo's own examples (MIT)


@pytest.mark.parametrize("source, example, rows", [(FIXTURES, "simple-csv", 6), (FIXTURES, "simple-test", 12),
                                                   (UPSTREAM, "simple-csv", 8), (UPSTREAM, "simple-test", 10)])
def test_promptfoo_examples_run_with_per_assertion_results(source, example, rows, tmp_path, tiny_model_dir):
    folder = tmp_path / example
    shutil.copytree(source / example, folder)
    result = _run(["--config", str(folder / "promptfooconfig.yaml"), "--model", str(tiny_model_dir),
                   "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == rows and [s["name"] for s in summary["scorers"]] == ["asserts"]
    assert any("not used: --model replaced" in n for n in summary["notices"])
    (model,) = summary["models"].values()
    totals = model["assertions"]
    assert totals["tests"] == rows
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert all(r["expected"] is None for r in records)  # __expected never became a reference answer
    first = records[0]["assertions"]["results"][0]
    assert {"type", "value", "pass", "score", "reason"} <= set(first)
    if example == "simple-csv":
        assert set(totals["by_type"]) <= {"icontains", "icontains-any"} and "icontains" in totals["by_type"]
        assert totals["tests_undecided"] == 0
    else:
        assert {"javascript", "python", "llm-rubric", "similar", "is-json", "equals"} <= set(totals["by_type"])
        assert totals["by_type"]["javascript"]["errors"] == 2 and totals["by_type"]["javascript"]["pass_rate"] is None
        rubric = [r for rec in records for r in rec["assertions"]["results"] if r["type"] == "llm-rubric"]
        assert all("needs an LLM judge" in r["error"] for r in rubric)  # no judge configured in this test
        assert any("not supported" in (r.get("error") or "") for rec in records for r in rec["assertions"]["results"])
    assert "asserts" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_fail_under_on_assertions(tmp_path, tiny_model_dir):
    folder = tmp_path / "csv"
    shutil.copytree(FIXTURES / "simple-csv", folder)
    args = ["--config", str(folder / "promptfooconfig.yaml"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "run")]
    result = _run([*args, "--fail-under", "asserts=1.0", "--fail-under", "assert:icontains=1.0"])
    # The tiny random model does not say "bonjour": both bars fail and the exit code says so.
    assert result.exit_code == 1, result.output
    gate = json.loads(result.stdout)["fail_under"]
    assert not gate["passed"] and any("assert:icontains" in f for f in gate["failures"])
    assert _run([*args, "--fail-under", "assert:icontains=0"]).exit_code == 0
    bad = _run([*args, "--fail-under", "assert:regex=0.5"])
    assert bad.exit_code == 2 and "no 'regex' assertions" in bad.output


def test_promptfoo_provider_and_llm_rubric_through_tunepilot_serve(tmp_path, tiny_model_dir):
    """The file's own provider (openai: with apiBaseUrl) and llm-rubric's judge both go over real HTTP."""
    from trainer.models import registry as models
    from trainer.server import create_app
    from trainer.server.background import BackgroundServer

    models.register_local("tiny", tiny_model_dir)
    with BackgroundServer(create_app()) as server:
        cfg = tmp_path / "promptfooconfig.yaml"
        cfg.write_text(f"""
prompts: ["Say hello to {{{{name}}}}"]
providers:
  - id: openai:chat:tiny
    config: {{apiBaseUrl: "{server.base_url}", temperature: 0}}
tests:
  - vars: {{name: Ada}}
    assert:
      - type: llm-rubric
        value: Greets Ada by name
      - type: contains
        value: Ada
judge: {{base_url: "{server.base_url}", model: tiny}}
generation: {{max_new_tokens: 6}}
""", encoding="utf-8")
        result = _run(["--config", str(cfg), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    (model,) = summary["models"].values()
    assert model["provider"] == "openai:tiny" and model["errors"] == 0
    assert any("provider openai:chat:tiny -> openai:tiny" in n for n in summary["notices"])
    assert any("temperature" in n for n in summary["notices"])  # read, not applied: said so
    record = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[0])
    rubric = record["assertions"]["results"][0]
    assert rubric["type"] == "llm-rubric" and "needs an LLM judge" not in (rubric.get("error") or "")
    assert rubric["score"] is not None or "judge gave no grade" in rubric["error"]  # the judge answered over HTTP


def test_plain_dataset_with_expected_columns_scores_assertions(tmp_path, tiny_model_dir):
    csv = tmp_path / "tests.csv"
    csv.write_text("question,__expected,__expected2,__description\n"
                   "Say bonjour,icontains:bonjour,not-contains:@@@,greeting\nSay merci,icontains:merci,,thanks\n",
                   encoding="utf-8")
    result = _run(["--dataset", str(csv), "--model", str(tiny_model_dir), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [s["name"] for s in summary["scorers"]] == ["asserts", "latency"]  # not exact/rouge against "icontains:bonjour"
    assert summary["dataset"]["expected_column"] is None
    (model,) = summary["models"].values()
    assert model["assertions"]["by_type"]["not-contains"]["passed"] == 1
    assert any("hold promptfoo assertions" in n for n in summary["notices"])
    wrong = _run(["--dataset", str(csv), "--model", str(tiny_model_dir), "--expected-column", "__expected"])
    assert wrong.exit_code == 2 and "holds promptfoo assertions" in wrong.output
