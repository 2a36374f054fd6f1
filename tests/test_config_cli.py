"""`tunepilot config ...` through typer's CliRunner: presets, broken files, JSON shapes, exit codes."""

from __future__ import annotations

import json
import sys
import types

import pytest
from typer.testing import CliRunner

from tunepilot.cli.main import app

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, ["config", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("name", ["lora", "qlora", "full", "freeze", "openai-style"])
@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_init_validate_estimate_on_presets(name, suffix, tmp_path):
    path = tmp_path / f"c{suffix}"
    result = run("init", "--preset", name, "--out", path, "--examples", 1000, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["path"] == str(path) and data["explanations"] and data["config"]["method"]["type"] == ("lora" if name == "openai-style" else name)
    path_gpu = tmp_path / f"gpu{suffix}"
    # target a named GPU so CUDA-only presets (qlora) validate on a CPU-only test machine
    text = path.read_text()
    path_gpu.write_text(text.replace('[hardware]', '[hardware]\ngpu = "A100 80G"') if suffix == ".toml"
                        else text.replace("hardware: {}", "hardware:\n  gpu: A100 80G"))
    result = run("validate", path_gpu, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["errors"] == []
    result = run("estimate", path_gpu, "--json")
    assert result.exit_code == 0, result.output
    est = json.loads(result.stdout)
    assert {"total_gb", "breakdown", "device_memory_gb", "fits", "max_batch_size"} <= set(est)
    assert est["device_memory_gb"] == 80 and est["fits"] is True


def test_init_prints_toml_without_out():
    result = run("init", "--preset", "full")
    assert result.exit_code == 0
    assert '[method]\ntype = "full"' in result.stdout


def test_broken_file_reports_everything_and_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('lr = 3\n[method]\ntype = "lorra"\nlora_r = 0\n[training]\nnum_epochs = 3\nbatch_size = "four"\n')
    result = run("validate", path, "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    by_field = {e["field"]: e for e in report["errors"]}
    assert "did you mean 'optimizer.learning_rate'" in by_field["lr"]["message"]
    assert "did you mean 'training.epochs'" in by_field["training.num_epochs"]["message"]
    assert "lora, qlora, full, freeze" in by_field["method.type"]["message"]
    assert "training.batch_size" in by_field
    # rules run on the valid parts too: lora_r = 0 is a rule error with its doc source
    rank = next(e for e in report["errors"] if e["rule_id"] == "lora-rank-min")
    assert rank["source"] == "en/lora.md" and rank["heading"] == "Rank (r)"
    assert "Traceback" not in result.output


def test_syntax_error_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  base_model: gemma-3-270m\n   dtype: auto\n")
    result = run("validate", path)
    assert result.exit_code == 2
    assert "line 3, column 9" in result.output
    result = run("estimate", path)
    assert result.exit_code == 2 and "line 3, column 9" in result.output and "Traceback" not in result.output


def test_missing_file_and_unknown_preset(tmp_path):
    assert run("validate", tmp_path / "none.toml").exit_code == 2
    result = run("init", "--preset", "ultra")
    assert result.exit_code == 2 and "lora, qlora, full, freeze, openai-style" in result.output


def test_estimate_unknown_model_is_a_user_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nbase_model = "my-mystery-model"\n')
    result = run("estimate", path)
    assert result.exit_code == 2 and "local model folder" in result.output


def test_validate_for_launch_checks_the_dataset(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f'[dataset]\npath = "{tmp_path / "nope.jsonl"}"\n[training]\ndevice = "cpu"\n[hardware]\ndevice_memory_gb = 1000.0\n')
    assert run("validate", path, "--json").exit_code == 0
    result = run("validate", path, "--json", "--for-launch")
    assert result.exit_code == 2
    assert "dataset-missing" in {e["rule_id"] for e in json.loads(result.stdout)["errors"]}


def test_schema_is_json_schema():
    result = run("schema")
    schema = json.loads(result.stdout)
    assert schema["properties"].keys() >= {"model", "method", "dataset", "optimizer", "training", "hardware", "sampling", "saving"}
    assert json.loads(run("schema", "--diffusion").stdout)["title"].startswith("tunepilot diffusion")


def test_from_text_uses_the_assistant_module(tmp_path, monkeypatch):
    from trainer.planning.presets import preset

    calls = []

    def fake_config_from_text(text, engine=None):
        calls.append(text)
        return {"config": preset("lora").to_dict(), "validation": {"errors": [], "warnings": []},
                "memory_estimate": {"total_gb": 1.0, "breakdown": {}, "device_memory_gb": 8.0, "fits": True},
                "explanations": [{"field": "method.type", "value": "lora", "reason": "r", "source": "en/lora.md"}]}

    module = types.ModuleType("assistant.config_from_text")
    module.config_from_text = fake_config_from_text
    monkeypatch.setitem(sys.modules, "assistant.config_from_text", module)
    out = tmp_path / "from-text.yaml"
    result = run("--from-text", "fine-tune gemma on data.jsonl", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert calls == ["fine-tune gemma on data.jsonl"] and data["path"] == str(out)
    from trainer.planning.config_io import load_config

    assert load_config(out).method.type == "lora"


def test_diffusion_cli(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(20):
        (images / f"{i}.png").write_bytes(b"png")
    cfg_path = tmp_path / "lora.toml"
    assert run("diffusion", "init", "--base", "sdxl", "--images", images, "--model", "sdxl.safetensors", "--gpu", "RTX 4090",
               "--out", cfg_path).exit_code == 0
    result = run("diffusion", "validate", cfg_path, "--json")
    assert result.exit_code == 0, result.output
    from trainer.planning.diffusion import load_diffusion

    batch = load_diffusion(cfg_path).training.batch_size  # init sizes the batch for the RTX 4090's 24 GB
    assert json.loads(result.stdout)["steps"]["total_steps"] == 20 * 10 * 10 // batch
    out = tmp_path / "kohya"
    result = run("diffusion", "export", cfg_path, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["config_file.toml", "dataset_config.toml", "sample_prompt.toml"]
    broken = tmp_path / "broken.toml"
    broken.write_text(cfg_path.read_text().replace("repeats = 10", "repeats = 0"))
    result = run("diffusion", "export", broken, "--out", tmp_path / "k2", "--json")
    assert result.exit_code == 2 and not (tmp_path / "k2").exists()
    assert "diffusion-repeats-min" in {e["rule_id"] for e in json.loads(result.stdout)["errors"]}
    result = run("diffusion", "export", broken, "--out", tmp_path / "k2")
    assert result.exit_code == 2 and "fix them" in result.output


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_diffusion_init_writes_every_config_format_it_reads(tmp_path, suffix):
    from trainer.planning.diffusion import load_diffusion

    out = tmp_path / f"lora{suffix}"
    result = run("diffusion", "init", "--base", "sd15", "--images", "图片", "--out", out)
    assert result.exit_code == 0 and f"wrote {out}" in result.output
    assert load_diffusion(out).dataset.image_dir == "图片"
    assert "图片" in out.read_text(encoding="utf-8")  # written as UTF-8, not escaped
    result = run("diffusion", "init", "--out", tmp_path / "lora.txt")
    assert result.exit_code == 2 and ".toml, .yaml, .yml or .json" in result.output
