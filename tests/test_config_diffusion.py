"""kohya sd-scripts diffusion LoRA configs: schema, step calculator, every rule, export of the three files."""

from __future__ import annotations

import pytest
import tomllib

from trainer.models.device import Environment
from trainer.planning.config_io import ConfigError
from trainer.planning.diffusion import (
    DIFFUSION_RULES,
    DiffusionConfig,
    diffusion_preset,
    export_kohya,
    parse_diffusion,
    step_plan,
    validate_diffusion,
)

GPU_BOX = Environment(has_cuda=True, has_bitsandbytes=True, cuda_bf16=True, cuda_memory_gb=24.0)
CPU_ONLY = Environment()


def base(kind: str = "sdxl", **sections) -> DiffusionConfig:
    data = diffusion_preset(kind, pretrained_model="/models/base.safetensors").to_dict()
    data["dataset"]["num_images"] = 20
    if kind == "flux":
        data["model"].update(clip_l="clip_l.safetensors", t5xxl="t5xxl.safetensors", ae="ae.safetensors")
    data["sample"] = {"every_n_steps": 200, "prompts": [{"prompt": "a photo of sks dog"}]}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return parse_diffusion(data)


CASES = {
    "diffusion-dim-min": (lambda: base(network={"dim": 0}), GPU_BOX),
    "diffusion-alpha-above-dim": (lambda: base(network={"dim": 8, "alpha": 32}), GPU_BOX),
    "diffusion-dropout-range": (lambda: base(network={"dropout": 1.0}), GPU_BOX),
    "diffusion-repeats-min": (lambda: base(dataset={"repeats": 0}), GPU_BOX),
    "diffusion-epochs-min": (lambda: base(training={"epochs": 0}), GPU_BOX),
    "diffusion-batch-min": (lambda: base(training={"batch_size": 0}), GPU_BOX),
    "diffusion-images-unknown": (lambda: base(dataset={"num_images": None, "image_dir": "/no/such/folder"}), GPU_BOX),
    "diffusion-steps-low": (lambda: base(dataset={"repeats": 1}, training={"epochs": 2}), GPU_BOX),
    "diffusion-steps-high": (lambda: base(dataset={"repeats": 100}, training={"epochs": 20}), GPU_BOX),
    "diffusion-resolution-format": (lambda: base(dataset={"resolution": 1000}), GPU_BOX),
    "diffusion-resolution-low": (lambda: base(dataset={"resolution": 512}), GPU_BOX),
    "diffusion-resolution-high": (lambda: base("sd15", dataset={"resolution": 1024}), GPU_BOX),
    "diffusion-v2-flags": (lambda: base(model={"v_parameterization": True}), GPU_BOX),
    "diffusion-v-param-needs-v2": (lambda: base("sd2", model={"v2": False, "v_parameterization": True}), GPU_BOX),
    "diffusion-flux-components": (lambda: base("flux", model={"ae": None}), GPU_BOX),
    "diffusion-learning-rate-positive": (lambda: base(training={"learning_rate": 0}), GPU_BOX),
    "diffusion-learning-rate-high": (lambda: base(training={"learning_rate": 5e-3}), GPU_BOX),
    "diffusion-adaptive-lr": (lambda: base(training={"optimizer_type": "Prodigy", "learning_rate": 1e-4}), GPU_BOX),
    "diffusion-lion-lr": (lambda: base(training={"optimizer_type": "Lion", "learning_rate": 1e-4}), GPU_BOX),
    "diffusion-optimizer-8bit-needs-cuda": (lambda: base(training={"optimizer_type": "AdamW8bit"}), CPU_ONLY),
    "diffusion-text-encoder-lr-unused": (lambda: base(network={"train_unet_only": True}, training={"text_encoder_lr": 5e-5}), GPU_BOX),
    "diffusion-xformers-and-sdpa": (lambda: base(training={"xformers": True, "sdpa": True}), GPU_BOX),
    "diffusion-fp16-sdxl": (lambda: base(training={"mixed_precision": "fp16"}), GPU_BOX),
    "diffusion-bf16-unsupported": (lambda: base("sd15", hardware={"gpu": "T4"}), GPU_BOX),
    "diffusion-sample-without-prompts": (lambda: base(sample={"prompts": []}), GPU_BOX),
    "diffusion-sample-beyond-run": (lambda: base(sample={"every_n_steps": 100_000}), GPU_BOX),
    "diffusion-save-beyond-run": (lambda: base(saving={"save_every_n_epochs": 50}), GPU_BOX),
}


def test_every_diffusion_rule_has_a_case():
    assert set(CASES) == {r.id for r in DIFFUSION_RULES}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_diffusion_rule_fires(rule_id):
    build, env = CASES[rule_id]
    report = validate_diffusion(build(), env=env)
    assert rule_id in {f.rule_id for f in report.findings}, [f.rule_id for f in report.findings]


@pytest.mark.parametrize("kind", ["sd15", "sd2", "sdxl", "flux"])
def test_presets_are_silent(kind):
    report = validate_diffusion(base(kind), env=GPU_BOX)
    assert report.findings == [], [f.message for f in report.findings]


def test_step_calculator():
    plan = step_plan(base(dataset={"num_images": 20, "repeats": 10}, training={"batch_size": 2, "epochs": 10}))
    assert (plan["steps_per_epoch"], plan["total_steps"]) == (100, 1000)
    assert plan["formula"] == "20 images x 10 repeats / batch 2 = 100 steps per epoch x 10 epochs = 1000 steps"
    assert step_plan(base(dataset={"num_images": 15, "repeats": 3}, training={"batch_size": 4}))["steps_per_epoch"] == 12  # rounds up


def test_images_are_counted_from_the_folder(tmp_path):
    for i in range(7):
        (tmp_path / f"img{i}.png").write_bytes(b"png")
        (tmp_path / f"img{i}.txt").write_text("sks dog")
    cfg = base(dataset={"num_images": None, "image_dir": str(tmp_path)})
    assert step_plan(cfg)["images"] == 7


def test_schema_errors_are_collected():
    with pytest.raises(ConfigError) as info:
        parse_diffusion({"model": {"base": "sd3"}, "training": {"optimizer_type": "adam", "lr": 1}})
    locs = {p["loc"] for p in info.value.problems}
    assert {"model.base", "training.optimizer_type", "training.lr"} <= locs


@pytest.mark.parametrize("kind, module, script", [("sdxl", "networks.lora", "sdxl_train_network.py"),
                                                  ("flux", "networks.lora_flux", "flux_train_network.py")])
def test_export_writes_three_kohya_files(kind, module, script, tmp_path):
    cfg = base(kind, dataset={"image_dir": "/data/dog", "trigger_word": "sks dog"})
    result = export_kohya(cfg, tmp_path)
    names = sorted(p.rsplit("/", 1)[-1] for p in result["files"])
    assert names == ["config_file.toml", "dataset_config.toml", "sample_prompt.toml"]
    config = tomllib.loads((tmp_path / "config_file.toml").read_text())
    assert config["network_arguments"]["network_module"] == module
    assert config["network_arguments"]["network_dim"] == cfg.network.dim
    assert config["training_arguments"]["max_train_epochs"] == cfg.training.epochs
    assert config["dataset_arguments"]["dataset_config"].endswith("dataset_config.toml")
    assert config["sample_prompt_arguments"]["sample_every_n_steps"] == 200
    dataset = tomllib.loads((tmp_path / "dataset_config.toml").read_text())
    subset = dataset["datasets"][0]["subsets"][0]
    assert subset == {"image_dir": "/data/dog", "num_repeats": 10, "class_tokens": "sks dog"}
    assert dataset["datasets"][0]["resolution"] == 1024
    prompts = tomllib.loads((tmp_path / "sample_prompt.toml").read_text())
    assert prompts["prompt"]["subset"][0]["prompt"] == "a photo of sks dog"
    assert script in result["command"]
    if kind == "flux":
        assert config["model_arguments"]["t5xxl"] == "t5xxl.safetensors"
