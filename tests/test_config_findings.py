"""trainer.planning.findings.check_config: schema problems and rule findings of a config in one report,
the same for a file, plain data (the assistant) and a TrainConfig (the UI card)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from trainer.models.device import Environment
from trainer.planning import rules
from trainer.planning.findings import REQUEST_SCHEMA_RULE, Checked, check_config
from trainer.planning.schema import TrainConfig

BROKEN = 'lr = 3\n[method]\ntype = "lorra"\nlora_r = 0\n[training]\nnum_epochs = 3\n'
KEYS = ["rule_id", "severity", "field", "message", "source", "heading"]


def test_schema_problems_first_then_rule_findings_on_the_valid_parts(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BROKEN)
    checked = check_config(path, env=Environment())
    assert isinstance(checked, Checked) and not checked.ok
    assert checked.config is not None and checked.config.method.lora_r == 0  # the valid parts were kept
    report = checked.to_dict()
    assert set(report) == {"errors", "warnings"}
    schema = [e for e in report["errors"] if e["rule_id"] == "schema"]
    assert [e["field"] for e in schema] == [p["loc"] for p in checked.problems]
    assert {e["field"] for e in schema} == {"lr", "method.type", "training.num_epochs"}
    assert report["errors"][: len(schema)] == schema  # schema problems come first
    assert all(e["source"] is None and e["heading"] is None for e in schema)
    rank = next(e for e in report["errors"] if e["rule_id"] == "lora-rank-min")
    assert list(rank) == KEYS and rank["source"] == "en/lora.md"


def test_a_file_that_does_not_parse_has_only_its_syntax_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  base_model: gemma-3-270m\n   dtype: auto\n")
    checked = check_config(str(path))
    assert checked.config is None and checked.report.warnings == []
    assert [e.rule_id for e in checked.report.errors] == ["syntax"]
    assert "line 3, column 9" in checked.report.errors[0].message


def test_a_config_object_gets_exactly_the_rules_report():
    cfg = TrainConfig()
    cfg.method.lora_r = 0
    env = Environment()
    checked = check_config(cfg, env=env)
    assert checked.config is cfg and checked.problems == []
    assert checked.to_dict() == rules.validate(cfg, env=env).to_dict()


def test_data_from_a_request_tags_its_schema_problems_as_the_requests():
    checked = check_config({"optimizer": {"type": "adam"}, "training": {"epochs": 2}}, origin="request", env=Environment())
    first = checked.to_dict()["errors"][0]
    assert first == {"rule_id": REQUEST_SCHEMA_RULE, "severity": "error", "field": "optimizer.type",
                     "message": first["message"], "source": "request", "heading": ""}
    assert checked.config.training.epochs == 2


def test_for_launch_adds_the_filesystem_rules(tmp_path):
    data = {"dataset": {"path": str(tmp_path / "nope.jsonl")}, "training": {"device": "cpu"},
            "hardware": {"device_memory_gb": 1000.0}}
    assert "dataset-missing" not in {e["rule_id"] for e in check_config(data).to_dict()["errors"]}
    assert "dataset-missing" in {e["rule_id"] for e in check_config(data, for_launch=True).to_dict()["errors"]}


def test_the_cli_prints_check_config_with_ok(tmp_path):
    from tunepilot.cli.main import app

    path = tmp_path / "bad.toml"
    path.write_text(BROKEN)
    result = CliRunner().invoke(app, ["config", "validate", str(path), "--json"])
    assert result.exit_code == 2
    printed = json.loads(result.stdout)
    assert printed == {**check_config(path).to_dict(), "ok": False}
