"""Foreground `tunepilot train --json`, the fine-tuned model id, and `merge` with its logit check."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tests.support import chat_rows, write_jsonl
from tunepilot.cli.main import app

pytestmark = pytest.mark.integration

ROWS = chat_rows(8)


def train_with_cli(tmp_path, tiny_model_dir, max_steps: int, saving: str) -> dict:
    """`tunepilot train CONFIG --json` on the tiny model; `saving` is the [saving] table's extra lines."""
    write_jsonl(tmp_path / "train.jsonl", ROWS)
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
max_steps = {max_steps}
batch_size = 4
[saving]
output_dir = "{tmp_path / 'run'}"
{saving}
""", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def trained_run(tmp_path, tiny_model_dir):
    return train_with_cli(tmp_path, tiny_model_dir, 3, 'suffix = "cli"'), tmp_path / "cfg.toml"


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


def test_train_cli_with_merge_after_training_registers_the_merged_model(tmp_path, tiny_model_dir):
    """`saving.merge_after_training` is honoured by `tunepilot train` (finish_run), not only by the job worker."""
    from trainer.models import registry as models

    summary = train_with_cli(tmp_path, tiny_model_dir, 2, 'suffix = "merged"\nmerge_after_training = true')
    merged_dir = tmp_path / "run" / "merged"
    assert summary["merged"]["output_dir"] == str(merged_dir) and summary["merged"]["max_logit_diff"] < 1e-4
    assert (merged_dir / "config.json").exists() and (merged_dir / "merge_info.json").exists()
    # The ft: id stays the adapter on its base (as after `tunepilot merge`); merged/ sits beside it.
    resolved = models.resolve(summary["fine_tuned_model"])
    assert resolved.adapter_path == tmp_path / "run" / "adapter" and resolved.base_path == tiny_model_dir
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()



def test_run_config_module_finishes_the_run_like_the_cli(tmp_path, tiny_model_dir, capsys):
    """`python -m trainer.run_config` (what `accelerate launch -m` runs) registers and merges too."""
    from trainer import run_config
    from trainer.models import registry as models

    write_jsonl(tmp_path / "d.jsonl", ROWS)
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: {{base_model: '{tiny_model_dir}', dtype: float32}}\n"
                      "dataset: {path: d.jsonl, max_seq_length: 48}\n"
                      "training: {max_steps: 1, batch_size: 4}\n"
                      "saving: {merge_after_training: true, suffix: mod}\n", encoding="utf-8")
    assert run_config.main([str(config), "--output-dir", str(tmp_path / "out")]) == 0
    # the final model (its kept checkpoint, ...:ckpt-step-1, is a model id too)
    [entry] = [e for e in models.list_models() if e.kind == "finetuned" and ":ckpt-step-" not in e.id]
    assert entry.id.startswith(f"ft:{tiny_model_dir.name}:mod:run-") and f"model id: {entry.id}" in capsys.readouterr().err
    assert models.resolve(entry.id).adapter_path == tmp_path / "out" / "adapter"
    assert (tmp_path / "out" / "merged" / "merge_info.json").exists()
    assert run_config.main([str(tmp_path / "missing.yaml")]) == 2
    assert "error: Config file not found" in capsys.readouterr().err
