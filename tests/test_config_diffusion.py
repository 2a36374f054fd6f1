"""kohya sd-scripts diffusion LoRA configs: schema, step calculator, every rule, export of the three files."""

from __future__ import annotations

from pathlib import Path

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
    "diffusion-dim-min": (lambda tmp: base(network={"dim": 0}), GPU_BOX),
    "diffusion-alpha-above-dim": (lambda tmp: base(network={"dim": 8, "alpha": 32}), GPU_BOX),
    "diffusion-dropout-range": (lambda tmp: base(network={"dropout": 1.0}), GPU_BOX),
    "diffusion-repeats-min": (lambda tmp: base(dataset={"repeats": 0}), GPU_BOX),
    "diffusion-epochs-min": (lambda tmp: base(training={"epochs": 0}), GPU_BOX),
    "diffusion-batch-min": (lambda tmp: base(training={"batch_size": 0}), GPU_BOX),
    "diffusion-images-unknown": (lambda tmp: base(dataset={"num_images": None, "image_dir": "/no/such/folder"}), GPU_BOX),
    "diffusion-steps-low": (lambda tmp: base(dataset={"repeats": 1}, training={"epochs": 2}), GPU_BOX),
    "diffusion-steps-high": (lambda tmp: base(dataset={"repeats": 100}, training={"epochs": 20}), GPU_BOX),
    "diffusion-resolution-format": (lambda tmp: base(dataset={"resolution": 1000}), GPU_BOX),
    "diffusion-resolution-low": (lambda tmp: base(dataset={"resolution": 512}), GPU_BOX),
    "diffusion-resolution-high": (lambda tmp: base("sd15", dataset={"resolution": 1024}), GPU_BOX),
    "diffusion-v2-flags": (lambda tmp: base(model={"v_parameterization": True}), GPU_BOX),
    "diffusion-v-param-needs-v2": (lambda tmp: base("sd2", model={"v2": False, "v_parameterization": True}), GPU_BOX),
    "diffusion-flux-components": (lambda tmp: base("flux", model={"ae": None}), GPU_BOX),
    "diffusion-learning-rate-positive": (lambda tmp: base(training={"learning_rate": 0}), GPU_BOX),
    "diffusion-learning-rate-high": (lambda tmp: base(training={"learning_rate": 5e-3}), GPU_BOX),
    "diffusion-adaptive-lr": (lambda tmp: base(training={"optimizer_type": "Prodigy", "learning_rate": 1e-4}), GPU_BOX),
    "diffusion-lion-lr": (lambda tmp: base(training={"optimizer_type": "Lion", "learning_rate": 1e-4}), GPU_BOX),
    "diffusion-optimizer-8bit-needs-cuda": (lambda tmp: base(training={"optimizer_type": "AdamW8bit"}), CPU_ONLY),
    "diffusion-text-encoder-lr-unused": (lambda tmp: base(network={"train_unet_only": True}, training={"text_encoder_lr": 5e-5}), GPU_BOX),
    "diffusion-xformers-and-sdpa": (lambda tmp: base(training={"xformers": True, "sdpa": True}), GPU_BOX),
    "diffusion-fp16-sdxl": (lambda tmp: base(training={"mixed_precision": "fp16"}), GPU_BOX),
    "diffusion-bf16-unsupported": (lambda tmp: base("sd15", hardware={"gpu": "T4"}), GPU_BOX),
    "diffusion-sample-without-prompts": (lambda tmp: base(sample={"prompts": []}), GPU_BOX),
    "diffusion-sample-beyond-run": (lambda tmp: base(sample={"every_n_steps": 100_000}), GPU_BOX),
    "diffusion-save-beyond-run": (lambda tmp: base(saving={"save_every_n_epochs": 50}), GPU_BOX),
    "diffusion-accumulation-min": (lambda tmp: base(training={"gradient_accumulation_steps": 0}), GPU_BOX),
    "diffusion-images-nested": (lambda tmp: base(dataset={"num_images": None, "image_dir": str(layout(tmp, {"photos/a.png"}))}), GPU_BOX),
    "diffusion-folder-without-repeats": (lambda tmp: base(dataset={"num_images": None,
                                         "image_dir": str(layout(tmp, {"10_dog/a.png", "misc/b.png"}))}), GPU_BOX),
    "diffusion-loose-images": (lambda tmp: base(dataset={"num_images": None, "image_dir": str(layout(tmp, {"10_dog/a.png", "b.png"}))}), GPU_BOX),
    "diffusion-memory-over": (lambda tmp: base("flux", training={"fp8_base": False, "cache_text_encoder_outputs": False},
                                               hardware={"gpu": "RTX 3060"}), GPU_BOX),
    "diffusion-sdxl-flux-only": (lambda tmp: base("sd15", training={"fp8_base": True}), GPU_BOX),
    "diffusion-te-cache-needs-unet-only": (lambda tmp: base(training={"cache_text_encoder_outputs": True}), GPU_BOX),
}


def layout(root, files) -> object:
    """Empty image files (and captions) at the given relative paths under root/img."""
    top = root / "img"
    for rel in files:
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"img")
        path.with_suffix(".txt").write_text("caption")
    top.mkdir(exist_ok=True)
    return top


def test_every_diffusion_rule_has_a_case():
    assert set(CASES) == {r.id for r in DIFFUSION_RULES}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_diffusion_rule_fires(rule_id, tmp_path):
    build, env = CASES[rule_id]
    report = validate_diffusion(build(tmp_path), env=env)
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


# ---------------------------------------------------------------- kohya folder rules, export, memory, init

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def sd_scripts_glob(image_dir: str) -> list[str]:
    """sd-scripts' documented rule, written out independently: the files directly in image_dir with an
    image extension in lower or upper case; no recursion into subfolders."""
    import glob
    import os

    found = []
    for ext in IMAGE_EXTS + tuple(e.upper() for e in IMAGE_EXTS):
        found += glob.glob(os.path.join(glob.escape(image_dir), "*" + ext))
    return sorted(set(found))


def test_n_name_folders_give_repeats_and_class_tokens(tmp_path):
    img = layout(tmp_path, {f"10_sks dog/{i}.png" for i in range(12)} | {f"20_style/{i}.jpg" for i in range(5)})
    cfg = base(dataset={"num_images": None, "image_dir": str(img)}, training={"batch_size": 2, "epochs": 10})
    plan = step_plan(cfg)
    assert [(s["repeats"], s["class_tokens"], s["images"]) for s in plan["subsets"]] == [(10, "sks dog", 12), (20, "style", 5)]
    assert plan["images"] == 17 and plan["images_seen_per_epoch"] == 220
    assert (plan["steps_per_epoch"], plan["total_steps"]) == (110, 1100)
    assert "12 x 10 [10_sks dog] + 5 x 20 [20_style]" in plan["formula"]


def test_regularisation_images_double_the_steps(tmp_path):
    img = layout(tmp_path, {f"10_dog/{i}.png" for i in range(20)})
    reg = layout(tmp_path / "r", {f"1_dog/{i}.png" for i in range(50)})
    cfg = base(dataset={"num_images": None, "image_dir": str(img), "reg_dir": str(reg)}, training={"batch_size": 2, "epochs": 10})
    plan = step_plan(cfg)
    assert plan["steps_per_epoch"] == 200 and "x 2 (regularisation images)" in plan["formula"]


def test_gradient_accumulation_divides_steps():
    plan = step_plan(base(dataset={"num_images": 20, "repeats": 10}, training={"batch_size": 2, "gradient_accumulation_steps": 4}))
    assert plan["steps_per_epoch"] == 25  # ceil(100 batches / 4)


def test_export_of_a_10_name_layout_is_train_ready_per_the_glob_rule(tmp_path):
    img = layout(tmp_path, {f"10_sks dog/{i}.png" for i in range(12)} | {f"20_style/{i}.JPG" for i in range(5)}
                 | {"20_style/notes/deeper.png"})
    cfg = base(dataset={"num_images": None, "image_dir": str(img), "trigger_word": None}, training={"batch_size": 2})
    export_kohya(cfg, tmp_path / "out")
    dataset = tomllib.loads((tmp_path / "out" / "dataset_config.toml").read_text())
    subsets = dataset["datasets"][0]["subsets"]
    assert [Path(s["image_dir"]).name for s in subsets] == ["10_sks dog", "20_style"]
    assert [s["num_repeats"] for s in subsets] == [10, 20] and [s["class_tokens"] for s in subsets] == ["sks dog", "style"]
    seen = sum(len(sd_scripts_glob(s["image_dir"])) * s["num_repeats"] for s in subsets)
    assert seen == step_plan(cfg)["images_seen_per_epoch"] == 12 * 10 + 5 * 20  # deeper.png is not read, as in kohya
    assert sd_scripts_glob(str(img)) == []  # the parent folder itself holds no images: pointing at it trains nothing


def test_memory_estimate_rests_on_the_doc_figures():
    from trainer.planning.diffusion_memory import (
        ANCHOR_PER_IMAGE_GB,
        estimate_diffusion,
    )

    cfg = base("sd15", dataset={"resolution": 1024}, training={"gradient_checkpointing": False})
    one, four = estimate_diffusion(cfg, batch_size=1), estimate_diffusion(cfg, batch_size=4)
    assert four["total_gb"] - one["total_gb"] == pytest.approx(3 * ANCHOR_PER_IMAGE_GB, abs=0.02)  # 3 x 3.2 GB
    figures = {b["gb"] for b in one["basis"]}
    assert {17.1, 26.7, 3.2, 13.9} <= figures
    sizes = [estimate_diffusion(base(k, training={"gradient_checkpointing": True}))["total_gb"] for k in ("sd15", "sdxl", "flux")]
    assert sizes == sorted(sizes)
    flux = base("flux")
    assert estimate_diffusion(flux)["total_gb"] < estimate_diffusion(base("flux", training={"fp8_base": False}))["total_gb"]
    gpu = estimate_diffusion(base(hardware={"gpu": "RTX 4090"}))
    assert gpu["device_memory_gb"] == 24 and gpu["fits"] is True and gpu["max_batch_size"] >= 1


@pytest.mark.parametrize("gpu", [None, "T4", "RTX 3070", "RTX 4090", "A100 80G"])
@pytest.mark.parametrize("kind", ["sd15", "sdxl", "flux"])
def test_init_is_valid_for_its_target(gpu, kind, tmp_path):
    from trainer.planning.diffusion_memory import estimate_diffusion, plan_diffusion

    img = layout(tmp_path, {f"10_x/{i}.png" for i in range(30)})
    cfg, choices = plan_diffusion(kind, image_dir=str(img), pretrained_model="/m.safetensors", gpu=gpu, env=CPU_ONLY)
    if kind == "flux":
        cfg.model.clip_l, cfg.model.t5xxl, cfg.model.ae = "c", "t", "a"
    report = validate_diffusion(cfg, env=CPU_ONLY)  # the target GPU when named, else this CPU-only machine
    assert not report.errors, [f.message for f in report.errors]
    assert all(c["source"].startswith("en/") and c["heading"] for c in choices)
    if gpu is None:
        assert cfg.training.optimizer_type == "AdamW"  # never an 8-bit optimizer validate rejects here
    else:
        est = estimate_diffusion(cfg)
        assert est["fits"] or cfg.training.batch_size == 1
    if gpu == "T4":
        assert cfg.training.mixed_precision == "fp16"


def test_init_rejects_an_unknown_gpu():
    from trainer.planning.diffusion_memory import plan_diffusion
    from tunepilot.core.errors import UserError

    with pytest.raises(UserError, match="unknown GPU"):
        plan_diffusion("sdxl", gpu="my laptop")


def test_reg_dir_without_n_name_folders_is_named(tmp_path):
    img = layout(tmp_path, {"10_dog/a.png"})
    reg = layout(tmp_path / "r", {"a.png", "b.png"})
    report = validate_diffusion(base(dataset={"num_images": None, "image_dir": str(img), "reg_dir": str(reg)}), env=GPU_BOX)
    loose = next(f for f in report.warnings if f.rule_id == "diffusion-loose-images")
    assert str(reg) in loose.message and "1_name for regularisation" in loose.message
