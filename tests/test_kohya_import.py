"""kohya files -> tunepilot diffusion configs: format detection, key mapping with nothing silently dropped,
dataset configs and their folders, and the CLI (import / validate / estimate / init) with one exit-code policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from trainer.planning.diffusion import export_kohya, step_plan
from trainer.planning.diffusion_import import (
    KohyaImportError,
    _flatten,
    detect_kohya,
    import_kohya,
)
from tunepilot.cli.main import app

KOHYA_SS = Path(__file__).parent / "fixtures" / "kohya_ss"
OWN = Path(__file__).parent / "fixtures" / "kohya"
PRESETS = sorted((KOHYA_SS / "presets_lora").glob("*.json"))


def _accounted(result) -> set[str]:
    keys = {m["key"] for m in result.mapped} | {c["key"] for c in result.changed} | {u["key"] for u in result.unsupported}
    keys |= set(result.unset)
    return {k.split(" --")[0] for k in keys}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_kohya_ss_preset_imports_with_every_key_accounted_for(preset):
    result = import_kohya(preset)
    assert result.kind == "kohya_ss-preset"
    data = json.loads(preset.read_text(encoding="utf-8"))
    missing = set(data) - _accounted(result)
    assert not missing, f"silently dropped: {sorted(missing)}"
    for item in result.unsupported:  # named, with a value and the nearest feature
        assert item["key"] in data and item["nearest"]


def test_kohya_ss_gui_config_toml():
    result = import_kohya(KOHYA_SS / "config_example.toml")
    assert result.kind == "kohya_ss-config"
    data = tomllib.loads((KOHYA_SS / "config_example.toml").read_text(encoding="utf-8"))
    flat = {where for where, _ in _flatten(data).values()}
    assert not flat - _accounted(result)


def test_family_and_values_from_a_flux_preset():
    result = import_kohya(KOHYA_SS / "presets_lora" / "flux1D_-_adamw8bit_fp8.json")
    cfg = result.config
    assert cfg.model.base == "flux" and cfg.training.optimizer_type == "AdamW8bit" and cfg.training.fp8_base
    assert cfg.training.sdpa and not cfg.training.xformers
    assert any(u["key"] == "noise_offset" for u in result.unsupported) or "noise_offset" in result.unset


def test_sd_scripts_training_config_reads_its_dataset_config(tmp_path):
    shutil.copytree(OWN, tmp_path / "k")
    result = import_kohya(tmp_path / "k" / "config_file.toml")
    assert result.kind == "sd-scripts-training"
    cfg = result.config
    assert (cfg.network.dim, cfg.training.optimizer_type, cfg.training.batch_size) == (16, "AdamW8bit", 2)
    assert [(s.image_dir, s.repeats, s.is_reg) for s in cfg.dataset.subsets] == [("img/10_mychar", 10, False), ("reg/1_woman", 1, True)]
    assert cfg.dataset.subsets[0].class_tokens == "mychar woman"
    unsupported = {u["key"] for u in result.unsupported}
    assert {"network_arguments.network_args", "training_arguments.noise_offset"} <= unsupported
    assert "dataset_config.toml:datasets[0].subsets[1].color_aug" in unsupported
    family = next(c for c in result.changed if c["field"] == "model.base")
    assert family["value"] == "sdxl" and "check model.base" in family["why"]  # a guess, said out loud


def test_dataset_config_round_trip_keeps_folders_and_repeats(tmp_path):
    for rel, n in (("img/10_mychar", 4), ("reg/1_woman", 6)):
        (tmp_path / rel).mkdir(parents=True)
        for i in range(n):
            (tmp_path / rel / f"{i}.png").write_bytes(b"x")
    text = (OWN / "dataset_config.toml").read_text().replace('"img/', f'"{tmp_path}/img/').replace('"reg/', f'"{tmp_path}/reg/')
    (tmp_path / "dataset_config.toml").write_text(text)
    result = import_kohya(tmp_path / "dataset_config.toml")
    assert result.kind == "sd-scripts-dataset"
    plan = step_plan(result.config)
    assert plan["steps_per_epoch"] == 4 * 10 * 2 // 2  # x2 for regularisation images, batch 2
    export_kohya(result.config, tmp_path / "out")
    back = tomllib.loads((tmp_path / "out" / "dataset_config.toml").read_text())["datasets"][0]
    assert [(s["image_dir"], s["num_repeats"], s.get("is_reg", False)) for s in back["subsets"]] == [
        (f"{tmp_path}/img/10_mychar", 10, False), (f"{tmp_path}/reg/1_woman", 1, True)]
    assert back["batch_size"] == 2 and back["resolution"] == 1024


def test_detection_and_unknown_files(tmp_path):
    assert detect_kohya({"datasets": [{"subsets": []}]}) == "sd-scripts-dataset"
    assert detect_kohya({"model_arguments": {"pretrained_model_name_or_path": "x"}}) == "sd-scripts-training"
    assert detect_kohya({"LoRA_type": "Standard", "epoch": 1, "network_dim": 8}) == "kohya_ss-preset"
    assert detect_kohya({"pretrained_model_name_or_path": "m", "network_dim": 8, "train_data_dir": "img"}) == "sd-scripts-training"
    assert detect_kohya({"model_name_or_path": "x", "stage": "sft"}) is None
    # axolotl also has `datasets:` and `optimizer`/`output_dir`; it is not kohya's
    assert detect_kohya({"base_model": "x", "datasets": [{"path": "d.jsonl", "type": "alpaca"}], "optimizer": "adamw_torch",
                         "output_dir": "out", "learning_rate": 1e-4}) is None
    other = tmp_path / "x.yaml"
    other.write_text("model_name_or_path: x\nstage: sft\n")
    with pytest.raises(KohyaImportError, match="known formats: kohya sd-scripts training config"):
        import_kohya(other)


# ---------------------------------------------------------------- CLI

def _cli(*args):
    return CliRunner().invoke(app, ["config", "diffusion", *args])


@pytest.mark.parametrize("file, kind", [(KOHYA_SS / "presets_lora" / "SDXL_-_LoRA_AI_Now_ADamW_v1.0.json", "kohya_ss-preset"),
                                        (KOHYA_SS / "config_example.toml", "kohya_ss-config"),
                                        (OWN / "config_file.toml", "sd-scripts-training"),
                                        (OWN / "dataset_config.toml", "sd-scripts-dataset")])
def test_validate_names_the_format_with_one_exit_code_policy(file, kind):
    result = _cli("validate", str(file), "--json")
    data = json.loads(result.stdout)
    assert data["import"]["format"] == kind
    assert result.exit_code == (2 if data["errors"] else 0)
    assert data["memory_estimate"]["total_gb"] > 0 and data["memory_estimate"]["basis"]
    assert not [e for e in data["errors"] if "unknown key" in e["message"]]


def test_import_command_table_and_json(tmp_path):
    out = tmp_path / "mine.toml"
    result = _cli("import", str(KOHYA_SS / "presets_lora" / "SDXL_-_LoRA_AI_Now_ADamW_v1.0.json"), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format_name"].startswith("kohya_ss GUI preset") and data["written"] == str(out)
    assert _cli("validate", str(out), "--json").stdout  # the written file is a tunepilot diffusion config
    table = _cli("import", str(KOHYA_SS / "presets_lora" / "SDXL_-_LoRA_AI_Now_ADamW_v1.0.json"))
    assert "not supported" in table.stdout and "network.dim" in table.stdout
    bad = tmp_path / "x.yaml"
    bad.write_text("foo: 1\n")
    failed = _cli("import", str(bad))
    assert failed.exit_code == 2 and "known formats" in failed.output


def test_init_then_validate_on_this_machine(tmp_path):
    img = tmp_path / "img" / "10_dog"
    img.mkdir(parents=True)
    for i in range(30):
        (img / f"{i}.png").write_bytes(b"x")
    cfg = tmp_path / "d.toml"
    init = _cli("init", "--base", "sdxl", "--images", str(img.parent), "--model", "/m.safetensors", "--out", str(cfg), "--json")
    assert init.exit_code == 0, init.output
    assert json.loads(init.stdout)["memory_estimate"]["basis"]
    check = _cli("validate", str(cfg), "--json")
    ids = {f["rule_id"] for f in json.loads(check.stdout)["errors"]}
    assert "diffusion-optimizer-8bit-needs-cuda" not in ids and check.exit_code == (2 if ids else 0)
    gpu = _cli("init", "--base", "sdxl", "--gpu", "T4", "--json")
    assert json.loads(gpu.stdout)["config"]["training"]["mixed_precision"] == "fp16"
    assert _cli("init", "--gpu", "toaster").exit_code == 2


def test_estimate_command_shows_its_basis(tmp_path):
    result = _cli("estimate", str(KOHYA_SS / "presets_lora" / "flux1D_-_adamw8bit_fp8.json"), "--gpu", "RTX 4090", "--json")
    assert result.exit_code == 0, result.output
    est = json.loads(result.stdout)
    assert est["device_memory_gb"] == 24 and {b["gb"] for b in est["basis"]} >= {17.1, 26.7}
    table = _cli("estimate", str(KOHYA_SS / "presets_lora" / "flux1D_-_adamw8bit_fp8.json"))
    assert "basis:" in table.stdout and "17.1 GB" in table.stdout


def test_training_config_validate_points_kohya_files_to_the_diffusion_commands():
    result = CliRunner().invoke(app, ["config", "validate", str(KOHYA_SS / "presets_lora" / "flux1D_-_adamw8bit_fp8.json"), "--json"])
    assert result.exit_code == 2
    (error,) = json.loads(result.stdout)["errors"]  # one line, not a wall of unknown keys
    assert error["rule_id"] == "peer-format" and "config diffusion validate" in error["message"]
    via_import = CliRunner().invoke(app, ["config", "import", str(OWN / "dataset_config.toml"), "--json"])
    assert via_import.exit_code == 0 and json.loads(via_import.stdout)["format"] == "sd-scripts-dataset"


def test_export_then_import_keeps_every_setting(tmp_path):
    """tunepilot -> kohya's three files -> tunepilot: the same run."""
    from trainer.planning.diffusion import diffusion_preset

    img = tmp_path / "img"
    for name, n in (("10_sks dog", 3), ("20_style", 2)):
        (img / name).mkdir(parents=True)
        for i in range(n):
            (img / name / f"{i}.png").write_bytes(b"x")
    cfg = diffusion_preset("sdxl", image_dir=str(img), pretrained_model="/m/sd_xl_base_1.0.safetensors")
    cfg.network.dim, cfg.network.alpha = 24, 12
    cfg.training.batch_size, cfg.training.gradient_accumulation_steps, cfg.training.learning_rate = 2, 2, 3e-4
    cfg.dataset.resolution = "896,1152"
    cfg.sample.every_n_steps = 100
    cfg.sample.prompts = [{"prompt": "a photo of sks dog", "seed": 3, "negative_prompt": "blurry"}]
    export_kohya(cfg, tmp_path / "kohya")
    back = import_kohya(tmp_path / "kohya" / "config_file.toml")
    got = back.config
    assert got.model.base == "sdxl" and got.model.pretrained_model == cfg.model.pretrained_model
    assert (got.network.dim, got.network.alpha) == (24, 12)
    assert (got.training.batch_size, got.training.gradient_accumulation_steps, got.training.learning_rate) == (2, 2, 3e-4)
    assert got.dataset.resolution == "896,1152"
    assert [(Path(s.image_dir).name, s.repeats, s.class_tokens) for s in got.dataset.subsets] == [
        ("10_sks dog", 10, "sks dog"), ("20_style", 20, "style")]
    assert [p.model_dump(exclude_none=True) for p in got.sample.prompts] == [
        {"prompt": "a photo of sks dog", "seed": 3, "negative_prompt": "blurry", "width": 896, "height": 1152}]
    assert got.sample.every_n_steps == 100 and step_plan(got)["total_steps"] == step_plan(cfg)["total_steps"]
    assert not back.unsupported, back.unsupported
