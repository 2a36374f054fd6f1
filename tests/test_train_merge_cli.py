"""Foreground `tunepilot train --json`, the fine-tuned model id, and `merge` with its logit check."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tunepilot.cli.main import app

ROWS = [{"messages": [{"role": "user", "content": f"Question {i}: hello"},
                      {"role": "assistant", "content": "The answer is yes. " * (1 + i % 3)}]} for i in range(8)]


@pytest.fixture
def trained_run(tmp_path, tiny_model_dir):
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS), encoding="utf-8")
    config = tmp_path / "cfg.toml"
    config.write_text(f"""
[model]
base_model = "{tiny_model_dir}"
dtype = "float32"
[dataset]
path = "train.jsonl"
max_seq_length = 48
[optimizer]
learning_rate = 0.02
[training]
max_steps = 3
batch_size = 4
[saving]
output_dir = "{tmp_path / 'run'}"
suffix = "cli"
""", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), config


def test_train_cli_json_registers_model(trained_run, tiny_model_dir):
    summary, config = trained_run
    assert summary["status"] == "succeeded" and summary["global_step"] == 3
    assert summary["fine_tuned_model"].startswith(f"ft:{tiny_model_dir.name}:cli:run-")
    from trainer.models import registry as models

    resolved = models.resolve(summary["fine_tuned_model"])
    assert resolved.adapter_path is not None and resolved.base_path == tiny_model_dir.resolve()
    again = CliRunner().invoke(app, ["train", str(config)])
    assert again.exit_code == 2 and "--overwrite" in again.stderr


def test_merge_matches_adapter_logits(trained_run, tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    summary, _ = trained_run
    result = CliRunner().invoke(app, ["merge", summary["output_dir"], "--json"])
    assert result.exit_code == 0, result.output
    merged = json.loads(result.stdout)
    assert merged["max_logit_diff"] < 1e-4
    # The merged folder is a plain model that differs from the base (so the check is not vacuous).
    tok = AutoTokenizer.from_pretrained(merged["output_dir"])
    ids = tok("The answer is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        after = AutoModelForCausalLM.from_pretrained(merged["output_dir"])(input_ids=ids).logits
        before = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))(input_ids=ids).logits
    assert (after - before).abs().max() > 1e-3
    again = CliRunner().invoke(app, ["merge", summary["output_dir"]])
    assert again.exit_code == 2 and "already exists" in again.stderr
    missing = CliRunner().invoke(app, ["merge", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "No adapter found" in missing.stderr
