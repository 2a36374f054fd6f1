"""Diffusion LoRA configs for kohya-ss/sd-scripts: schema, step calculator, rules and export.

tunepilot validates and writes these configs; it does not train diffusion models. A tunepilot
diffusion config (TOML/YAML, sections below) becomes kohya's three files:
- `config_file.toml` (passed as `--config_file`; sd-scripts flattens its sections into arguments),
- `dataset_config.toml` (`[general]` + `[[datasets]]` with `[[datasets.subsets]]`),
- `sample_prompt.toml` (`[prompt]` defaults + `[[prompt.subset]]` prompts).

Steps: images x repeats / batch size (rounded up) per epoch, times epochs (unless max_train_steps).
Rules cite the "Diffusion LoRA with kohya sd-scripts" part of knowledge/docs/en/lora.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainer.models.device import Environment
from trainer.planning.rules import Finding, Rule, ValidationReport

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
SCRIPTS = {"sd15": "train_network.py", "sd2": "train_network.py", "sdxl": "sdxl_train_network.py", "flux": "flux_train_network.py"}
NETWORK_MODULES = {"sd15": "networks.lora", "sd2": "networks.lora", "sdxl": "networks.lora", "flux": "networks.lora_flux"}
NATIVE_RESOLUTION = {"sd15": 512, "sd2": 768, "sdxl": 1024, "flux": 1024}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DiffusionModel(_Section):
    base: Literal["sd15", "sd2", "sdxl", "flux"] = Field("sdxl", description="Model family: SD 1.5, SD 2.x, SDXL or Flux.1.")
    pretrained_model: str = Field("", description="Checkpoint (.safetensors) or diffusers folder of the base model.")
    v2: bool = Field(False, description="The base is Stable Diffusion 2.x (kohya's --v2).")
    v_parameterization: bool = Field(False, description="The base predicts v (SD 2.x 768-v models); needs v2.")
    vae: str | None = Field(None, description="Optional separate VAE file.")
    clip_l: str | None = Field(None, description="Flux only: CLIP-L text encoder file.")
    t5xxl: str | None = Field(None, description="Flux only: T5-XXL text encoder file.")
    ae: str | None = Field(None, description="Flux only: autoencoder file.")


class DiffusionNetwork(_Section):
    dim: int = Field(16, description="network_dim: LoRA rank; 8-32 for characters and styles.")
    alpha: float = Field(8, description="network_alpha: the update is scaled by alpha/dim; usually dim/2 or 1.")
    dropout: float | None = Field(None, description="network_dropout, in [0, 1).")
    train_unet_only: bool = Field(False, description="Train only the U-Net/DiT, not the text encoder(s).")


class DiffusionDataset(_Section):
    image_dir: str = Field("", description="Folder of training images with caption files beside them.")
    num_images: int | None = Field(None, description="Number of images; counted from image_dir when not given.")
    repeats: int = Field(10, description="num_repeats: how often each image is seen per epoch.")
    resolution: int | str = Field(1024, description='Training resolution: 512, 1024, or "W,H".')
    caption_extension: str = Field(".txt", description="Caption file extension.")
    trigger_word: str | None = Field(None, description="class_tokens: used as the caption where an image has none.")
    enable_bucket: bool = Field(True, description="Aspect-ratio bucketing.")
    min_bucket_reso: int = Field(256, description="Smallest bucket side.")
    max_bucket_reso: int = Field(2048, description="Largest bucket side.")
    shuffle_caption: bool = Field(False, description="Shuffle comma-separated caption tags.")
    keep_tokens: int = Field(0, description="Leading caption tokens kept in place when shuffling.")


class DiffusionTraining(_Section):
    epochs: int = Field(10, description="max_train_epochs.")
    max_train_steps: int | None = Field(None, description="Stop after this many steps (overrides epochs).")
    batch_size: int = Field(1, description="Images per step.")
    optimizer_type: Literal["AdamW", "AdamW8bit", "PagedAdamW8bit", "Lion", "Lion8bit", "AdaFactor", "Prodigy", "DAdaptAdam", "SGDNesterov"] = Field(
        "AdamW8bit", description="kohya optimizer_type; the 8-bit ones need CUDA and bitsandbytes.")
    learning_rate: float = Field(1e-4, description="Base learning rate (Prodigy/DAdapt: 1.0).")
    unet_lr: float | None = Field(None, description="U-Net/DiT learning rate (defaults to learning_rate).")
    text_encoder_lr: float | None = Field(None, description="Text encoder learning rate; usually below unet_lr.")
    lr_scheduler: Literal["constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial"] = Field(
        "cosine", description="Learning-rate schedule.")
    lr_warmup_steps: int = Field(0, description="Warmup steps.")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("bf16", description="Mixed precision.")
    save_precision: Literal["float", "fp16", "bf16"] = Field("fp16", description="Precision of the saved LoRA.")
    xformers: bool = Field(False, description="Use xformers attention.")
    sdpa: bool = Field(True, description="Use PyTorch scaled-dot-product attention (do not combine with xformers).")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory.")
    cache_latents: bool = Field(True, description="Encode images with the VAE once, before training.")
    seed: int = Field(42, description="Random seed.")


class SamplePrompt(_Section):
    prompt: str = Field(..., description="Sample prompt.")
    negative_prompt: str | None = Field(None, description="Negative prompt.")
    width: int | None = Field(None, description="Width (defaults to the training resolution).")
    height: int | None = Field(None, description="Height (defaults to the training resolution).")
    seed: int | None = Field(None, description="Seed for this sample.")


class DiffusionSample(_Section):
    every_n_steps: int | None = Field(None, description="sample_every_n_steps.")
    every_n_epochs: int | None = Field(None, description="sample_every_n_epochs.")
    sampler: Literal["ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++", "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a"] = Field(
        "euler_a", description="sample_sampler.")
    steps: int = Field(28, description="Sampling steps per image.")
    scale: float = Field(7.0, description="CFG scale.")
    prompts: list[SamplePrompt] = Field(default_factory=list, description="Prompts to sample.")


class DiffusionSaving(_Section):
    output_dir: str = Field("output", description="Where the LoRA files go.")
    output_name: str = Field("lora", description="File name stem of the LoRA.")
    save_every_n_epochs: int = Field(1, description="Save a LoRA every N epochs.")
    save_model_as: Literal["safetensors", "ckpt", "pt"] = Field("safetensors", description="File format.")


class DiffusionHardware(_Section):
    gpu: str | None = Field(None, description='GPU name for the precision checks, e.g. "RTX 4090" or "T4".')


class DiffusionConfig(_Section):
    """A kohya sd-scripts LoRA run (SD 1.5 / SD 2.x / SDXL / Flux)."""

    model: DiffusionModel = Field(default_factory=DiffusionModel, description="Base model.")
    network: DiffusionNetwork = Field(default_factory=DiffusionNetwork, description="LoRA network.")
    dataset: DiffusionDataset = Field(default_factory=DiffusionDataset, description="Images and captions.")
    training: DiffusionTraining = Field(default_factory=DiffusionTraining, description="Training loop.")
    sample: DiffusionSample = Field(default_factory=DiffusionSample, description="Sample images during training.")
    saving: DiffusionSaving = Field(default_factory=DiffusionSaving, description="Outputs.")
    hardware: DiffusionHardware = Field(default_factory=DiffusionHardware, description="Target hardware.")

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


# ---------------------------------------------------------------- presets, I/O

def diffusion_preset(base: str = "sdxl", image_dir: str = "", pretrained_model: str = "") -> DiffusionConfig:
    """Common starting values per family (character/style LoRA)."""
    cfg = DiffusionConfig()
    cfg.model.base = base  # type: ignore[assignment]
    cfg.model.pretrained_model = pretrained_model
    cfg.dataset.image_dir = image_dir
    cfg.dataset.resolution = NATIVE_RESOLUTION[base]
    if base == "sd2":
        cfg.model.v2 = True
    if base == "flux":
        cfg.network.train_unet_only = True
        cfg.training.learning_rate = 1e-4
        cfg.training.gradient_checkpointing = True
        cfg.training.lr_scheduler = "constant"
    if base == "sd15":
        cfg.network.dim, cfg.network.alpha = 32, 16
        cfg.training.text_encoder_lr = 5e-5
    return cfg


def parse_diffusion(data: dict) -> DiffusionConfig:
    """Validate plain data; ConfigError lists every problem."""
    from trainer.planning.config_io import ConfigError

    if not isinstance(data, dict):
        raise ConfigError([{"loc": "", "message": "the diffusion config must be a table of sections"}])
    try:
        return DiffusionConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("literal", "list[", "int", "str")))
            if err["type"] == "extra_forbidden":
                problems.append({"loc": loc, "message": f"unknown key {str(err['loc'][-1])!r}"})
            elif err["type"] == "literal_error":
                problems.append({"loc": loc, "message": f"{err['input']!r} is not allowed; choose one of: {err['ctx']['expected']}"})
            else:
                problems.append({"loc": loc, "message": f"{err['msg']} (got {err.get('input')!r})"})
        unique = list({(p["loc"], p["message"]): p for p in problems}.values())
        raise ConfigError(unique) from None


def load_diffusion(path: str | Path) -> DiffusionConfig:
    from trainer.planning.config_io import read_config_data

    return parse_diffusion(read_config_data(path))


# ---------------------------------------------------------------- steps

def count_images(image_dir: str) -> int | None:
    folder = Path(image_dir).expanduser() if image_dir else None
    if folder is None or not folder.is_dir():
        return None
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def resolution_pair(resolution: int | str) -> tuple[int, int] | None:
    if isinstance(resolution, int):
        return resolution, resolution
    parts = [p.strip() for p in str(resolution).replace("x", ",").split(",")]
    if len(parts) == 1 and parts[0].isdigit():
        return int(parts[0]), int(parts[0])
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def step_plan(cfg: DiffusionConfig) -> dict:
    """images x repeats / batch (rounded up) per epoch, x epochs; None values where images are unknown."""
    images = cfg.dataset.num_images if cfg.dataset.num_images is not None else count_images(cfg.dataset.image_dir)
    plan = {"images": images, "repeats": cfg.dataset.repeats, "batch_size": cfg.training.batch_size,
            "epochs": cfg.training.epochs, "steps_per_epoch": None, "total_steps": cfg.training.max_train_steps}
    if images is None or cfg.dataset.repeats < 1 or cfg.training.batch_size < 1:
        return plan
    per_epoch = math.ceil(images * cfg.dataset.repeats / cfg.training.batch_size)
    plan["steps_per_epoch"] = per_epoch
    if cfg.training.max_train_steps is None:
        plan["total_steps"] = per_epoch * max(cfg.training.epochs, 0)
    plan["formula"] = (f"{images} images x {cfg.dataset.repeats} repeats / batch {cfg.training.batch_size} = {per_epoch} steps per epoch"
                       + (f" x {cfg.training.epochs} epochs = {plan['total_steps']} steps" if cfg.training.max_train_steps is None
                          else f"; max_train_steps = {cfg.training.max_train_steps}"))
    return plan


# ---------------------------------------------------------------- rules

class DiffusionContext:
    def __init__(self, cfg: DiffusionConfig, env: Environment):
        self.cfg = cfg
        self.env = env
        self.plan = step_plan(cfg)


STEPS = "Steps, repeats and epochs"
DIM = "Network dim and alpha for images"
LR = "Learning rates and optimizers for images"
RES = "Resolution and model versions"
PREC = "Mixed precision, xformers and samples"
ZH = {STEPS: "步数、重复次数与轮数", DIM: "图像 LoRA 的 dim 与 alpha", LR: "图像 LoRA 的学习率与优化器",
      RES: "分辨率与模型版本", PREC: "混合精度、xformers 与采样"}
ADAPTIVE = ("Prodigy", "DAdaptAdam")
BNB = ("AdamW8bit", "PagedAdamW8bit", "Lion8bit")


def _dr(id, severity, field, message, heading, check) -> Rule:
    return Rule(id, severity, field, message, "lora.md", heading, ZH[heading], check)


def _lr(c) -> float:
    return c.cfg.training.unet_lr if c.cfg.training.unet_lr is not None else c.cfg.training.learning_rate


def _bad_resolution(c):
    pair = resolution_pair(c.cfg.dataset.resolution)
    if pair is None:
        return {"res": c.cfg.dataset.resolution, "why": "write 1024 or \"W,H\""}
    if any(side % 64 for side in pair):
        return {"res": c.cfg.dataset.resolution, "why": "each side must be a multiple of 64"}
    return None


def _res_side(c) -> int:
    pair = resolution_pair(c.cfg.dataset.resolution)
    return max(pair) if pair else 0


DIFFUSION_RULES: list[Rule] = [
    _dr("diffusion-dim-min", "error", "network.dim", "network.dim must be at least 1; 8-32 is typical for a character or style.", DIM,
        lambda c: c.cfg.network.dim < 1),
    _dr("diffusion-alpha-above-dim", "warning", "network.alpha",
        "network.alpha ({alpha:g}) above network.dim ({dim}) scales updates up by alpha/dim and tends to burn in; use alpha = dim/2 or 1.", DIM,
        lambda c: {"alpha": c.cfg.network.alpha, "dim": c.cfg.network.dim} if c.cfg.network.dim >= 1 and c.cfg.network.alpha > c.cfg.network.dim else None),
    _dr("diffusion-dropout-range", "error", "network.dropout", "network.dropout must be in [0, 1).", DIM,
        lambda c: c.cfg.network.dropout is not None and not 0 <= c.cfg.network.dropout < 1),
    _dr("diffusion-repeats-min", "error", "dataset.repeats", "dataset.repeats must be at least 1 (10 is common for 10-30 images).", STEPS,
        lambda c: c.cfg.dataset.repeats < 1),
    _dr("diffusion-epochs-min", "error", "training.epochs", "training.epochs must be at least 1.", STEPS,
        lambda c: c.cfg.training.epochs < 1 and c.cfg.training.max_train_steps is None),
    _dr("diffusion-batch-min", "error", "training.batch_size", "training.batch_size must be at least 1.", STEPS,
        lambda c: c.cfg.training.batch_size < 1),
    _dr("diffusion-images-unknown", "error", "dataset.image_dir",
        "No images found: dataset.image_dir ({dir}) is missing or holds no .png/.jpg/.webp files, and dataset.num_images is not set; the step count cannot be computed.", STEPS,
        lambda c: {"dir": c.cfg.dataset.image_dir or "(empty)"} if not c.plan["images"] else None),
    _dr("diffusion-steps-low", "warning", "training.epochs",
        "Only {total} training steps ({formula}); a LoRA usually needs 1000-3000. Raise repeats or epochs.", STEPS,
        lambda c: {"total": c.plan["total_steps"], "formula": c.plan.get("formula", "")}
        if c.plan["total_steps"] is not None and 0 < c.plan["total_steps"] < 500 else None),
    _dr("diffusion-steps-high", "warning", "training.epochs",
        "{total} training steps ({formula}) is far beyond the 1000-3000 a LoRA usually needs and risks overfitting; lower repeats or epochs.", STEPS,
        lambda c: {"total": c.plan["total_steps"], "formula": c.plan.get("formula", "")}
        if c.plan["total_steps"] is not None and c.plan["total_steps"] > 10000 else None),
    _dr("diffusion-resolution-format", "error", "dataset.resolution",
        "dataset.resolution = {res!r} is not usable ({why}).", RES, _bad_resolution),
    _dr("diffusion-resolution-low", "warning", "dataset.resolution",
        "{base} was trained at {native}px; a resolution of {side} loses detail. Use {native}.", RES,
        lambda c: {"base": c.cfg.model.base, "native": NATIVE_RESOLUTION[c.cfg.model.base], "side": _res_side(c)}
        if c.cfg.model.base in ("sdxl", "flux") and 0 < _res_side(c) < 768 else None),
    _dr("diffusion-resolution-high", "warning", "dataset.resolution",
        "SD 1.5 was trained at 512px; {side} needs much more memory and often duplicates subjects. Use 512-768.", RES,
        lambda c: {"side": _res_side(c)} if c.cfg.model.base == "sd15" and _res_side(c) > 768 else None),
    _dr("diffusion-v2-flags", "error", "model.v2",
        "model.v2 / model.v_parameterization describe Stable Diffusion 2.x and must be false for {base}.", RES,
        lambda c: {"base": c.cfg.model.base} if c.cfg.model.base in ("sdxl", "flux", "sd15") and (c.cfg.model.v2 or c.cfg.model.v_parameterization) else None),
    _dr("diffusion-v-param-needs-v2", "error", "model.v_parameterization",
        "model.v_parameterization = true is only for SD 2.x v-models; set model.v2 = true as well (base = \"sd2\").", RES,
        lambda c: c.cfg.model.base == "sd2" and c.cfg.model.v_parameterization and not c.cfg.model.v2),
    _dr("diffusion-flux-components", "error", "model.base",
        "Flux LoRA training needs the separate text encoders and autoencoder: set {missing}.", RES,
        lambda c: {"missing": ", ".join(f"model.{k}" for k in ("clip_l", "t5xxl", "ae") if not getattr(c.cfg.model, k))}
        if c.cfg.model.base == "flux" and not all((c.cfg.model.clip_l, c.cfg.model.t5xxl, c.cfg.model.ae)) else None),
    _dr("diffusion-learning-rate-positive", "error", "training.learning_rate", "The learning rate must be greater than 0; 1e-4 is typical for AdamW.", LR,
        lambda c: c.cfg.training.learning_rate <= 0 or (c.cfg.training.unet_lr is not None and c.cfg.training.unet_lr <= 0)),
    _dr("diffusion-learning-rate-high", "warning", "training.learning_rate",
        "A learning rate of {lr:g} is high for an image LoRA with {opt}; 1e-4 (U-Net) and 5e-5 (text encoder) are typical.", LR,
        lambda c: {"lr": _lr(c), "opt": c.cfg.training.optimizer_type}
        if c.cfg.training.optimizer_type not in ADAPTIVE and _lr(c) > 1e-3 else None),
    _dr("diffusion-adaptive-lr", "warning", "training.learning_rate",
        "{opt} sets its own step size: use learning_rate = 1.0 (got {lr:g}).", LR,
        lambda c: {"opt": c.cfg.training.optimizer_type, "lr": _lr(c)}
        if c.cfg.training.optimizer_type in ADAPTIVE and abs(_lr(c) - 1.0) > 1e-9 else None),
    _dr("diffusion-lion-lr", "warning", "training.learning_rate",
        "Lion needs a learning rate 3-10x below AdamW's 1e-4: use 1e-5 to 3e-5 (got {lr:g}).", LR,
        lambda c: {"lr": _lr(c)} if c.cfg.training.optimizer_type in ("Lion", "Lion8bit") and _lr(c) > 3.4e-5 else None),
    _dr("diffusion-optimizer-8bit-needs-cuda", "error", "training.optimizer_type",
        "optimizer_type = \"{opt}\" needs CUDA and bitsandbytes, which {where} lacks; use \"AdamW\" or \"AdaFactor\".", LR,
        lambda c: {"opt": c.cfg.training.optimizer_type, "where": c.env.description}
        if c.cfg.training.optimizer_type in BNB and not (c.env.has_cuda and c.env.has_bitsandbytes) else None),
    _dr("diffusion-text-encoder-lr-unused", "warning", "training.text_encoder_lr",
        "training.text_encoder_lr is set but network.train_unet_only = true, so the text encoder is not trained; remove one.", LR,
        lambda c: c.cfg.network.train_unet_only and c.cfg.training.text_encoder_lr is not None),
    _dr("diffusion-xformers-and-sdpa", "error", "training.xformers",
        "training.xformers and training.sdpa are both on; pick one attention implementation (sdpa needs no extra package).", PREC,
        lambda c: c.cfg.training.xformers and c.cfg.training.sdpa),
    _dr("diffusion-fp16-sdxl", "warning", "training.mixed_precision",
        "{base} in fp16 overflows (the SDXL VAE and Flux produce NaNs in fp16); use mixed_precision = \"bf16\" on an Ampere or newer GPU.", PREC,
        lambda c: {"base": c.cfg.model.base} if c.cfg.model.base in ("sdxl", "flux") and c.cfg.training.mixed_precision == "fp16" else None),
    _dr("diffusion-bf16-unsupported", "error", "training.mixed_precision",
        "mixed_precision = \"bf16\" but {gpu} has no bf16 support; use \"fp16\" (SD 1.5) or a newer GPU.", PREC,
        lambda c: {"gpu": c.cfg.hardware.gpu} if c.cfg.training.mixed_precision == "bf16" and _gpu_lacks_bf16(c.cfg.hardware.gpu) else None),
    _dr("diffusion-sample-without-prompts", "error", "sample.prompts",
        "Sampling is scheduled (every_n_steps/every_n_epochs) but sample.prompts is empty; add prompts or turn sampling off.", PREC,
        lambda c: bool(c.cfg.sample.every_n_steps or c.cfg.sample.every_n_epochs) and not c.cfg.sample.prompts),
    _dr("diffusion-sample-beyond-run", "warning", "sample.every_n_steps",
        "sample.every_n_steps = {n} is beyond the run's {total} steps, so no sample would be made; use {suggest}.", PREC,
        lambda c: {"n": c.cfg.sample.every_n_steps, "total": c.plan["total_steps"], "suggest": max(1, c.plan["total_steps"] // 5)}
        if c.cfg.sample.every_n_steps and c.plan["total_steps"] and c.cfg.sample.every_n_steps > c.plan["total_steps"] else None),
    _dr("diffusion-save-beyond-run", "warning", "saving.save_every_n_epochs",
        "saving.save_every_n_epochs = {n} is beyond the {epochs} epochs; only the final LoRA is saved.", STEPS,
        lambda c: {"n": c.cfg.saving.save_every_n_epochs, "epochs": c.cfg.training.epochs}
        if c.cfg.saving.save_every_n_epochs > c.cfg.training.epochs >= 1 and c.cfg.training.max_train_steps is None else None),
]


def _gpu_lacks_bf16(name: str | None) -> bool:
    from trainer.planning.hardware import lookup_gpu

    gpu = lookup_gpu(name)
    return gpu is not None and not gpu.bf16


def validate_diffusion(cfg: DiffusionConfig, env: Environment | None = None) -> ValidationReport:
    """Run the diffusion rules (all problems in one pass). The environment is the target GPU when
    hardware.gpu names one, else this machine."""
    from trainer.planning.hardware import lookup_gpu

    gpu = lookup_gpu(cfg.hardware.gpu)
    env = Environment.for_gpu(gpu) if gpu is not None else (env or Environment.detect())
    ctx = DiffusionContext(cfg, env)
    report = ValidationReport()
    for rule in DIFFUSION_RULES:
        result = rule.check(ctx)
        if not result:
            continue
        values = result if isinstance(result, dict) else {}
        try:
            message = rule.message.format(**values)
        except (KeyError, ValueError, IndexError):
            message = rule.message
        finding = Finding(rule.id, rule.severity, rule.field, message, rule.source, rule.heading)
        (report.errors if rule.severity == "error" else report.warnings).append(finding)
    return report


# ---------------------------------------------------------------- kohya export

def kohya_files(cfg: DiffusionConfig, folder: str | Path) -> dict[str, dict]:
    """The three kohya files as data (file name -> TOML table); paths inside point into `folder`."""
    folder = Path(folder).resolve()
    m, n, d, t, s, o = cfg.model, cfg.network, cfg.dataset, cfg.training, cfg.sample, cfg.saving
    pair = resolution_pair(d.resolution) or (1024, 1024)
    model_args = {"pretrained_model_name_or_path": m.pretrained_model, "v2": m.v2, "v_parameterization": m.v_parameterization}
    for key in ("vae", "clip_l", "t5xxl", "ae"):
        if getattr(m, key):
            model_args[key] = getattr(m, key)
    network_args = {"network_module": NETWORK_MODULES[m.base], "network_dim": n.dim, "network_alpha": n.alpha,
                    "network_train_unet_only": n.train_unet_only}
    if n.dropout is not None:
        network_args["network_dropout"] = n.dropout
    optimizer_args = {"optimizer_type": t.optimizer_type, "learning_rate": t.learning_rate,
                      "lr_scheduler": t.lr_scheduler, "lr_warmup_steps": t.lr_warmup_steps}
    if t.unet_lr is not None:
        optimizer_args["unet_lr"] = t.unet_lr
    if t.text_encoder_lr is not None and not n.train_unet_only:
        optimizer_args["text_encoder_lr"] = t.text_encoder_lr
    training_args = {"output_dir": o.output_dir, "output_name": o.output_name, "save_model_as": o.save_model_as,
                     "save_every_n_epochs": o.save_every_n_epochs, "save_precision": t.save_precision,
                     "max_train_epochs": t.epochs, "mixed_precision": t.mixed_precision, "xformers": t.xformers,
                     "sdpa": t.sdpa, "gradient_checkpointing": t.gradient_checkpointing, "seed": t.seed}
    if t.max_train_steps is not None:
        training_args["max_train_steps"] = t.max_train_steps
    config_file = {
        "model_arguments": model_args,
        "network_arguments": network_args,
        "optimizer_arguments": optimizer_args,
        "dataset_arguments": {"dataset_config": str(folder / "dataset_config.toml"), "cache_latents": t.cache_latents},
        "training_arguments": training_args,
    }
    if s.prompts:
        sample_args = {"sample_prompts": str(folder / "sample_prompt.toml"), "sample_sampler": s.sampler}
        if s.every_n_steps:
            sample_args["sample_every_n_steps"] = s.every_n_steps
        if s.every_n_epochs:
            sample_args["sample_every_n_epochs"] = s.every_n_epochs
        config_file["sample_prompt_arguments"] = sample_args

    subset = {"image_dir": d.image_dir, "num_repeats": d.repeats}
    if d.trigger_word:
        subset["class_tokens"] = d.trigger_word
    dataset_entry = {"resolution": pair[0] if pair[0] == pair[1] else list(pair), "batch_size": t.batch_size,
                     "enable_bucket": d.enable_bucket, "subsets": [subset]}
    if d.enable_bucket:
        dataset_entry.update(min_bucket_reso=d.min_bucket_reso, max_bucket_reso=d.max_bucket_reso)
    dataset_config = {"general": {"caption_extension": d.caption_extension, "shuffle_caption": d.shuffle_caption,
                                  "keep_tokens": d.keep_tokens},
                      "datasets": [dataset_entry]}

    defaults = {"width": pair[0], "height": pair[1], "sample_steps": s.steps, "scale": s.scale}
    subsets = []
    for p in s.prompts:
        entry = {"prompt": p.prompt}
        for key in ("negative_prompt", "width", "height", "seed"):
            if getattr(p, key) is not None:
                entry[key] = getattr(p, key)
        subsets.append(entry)
    sample_prompt = {"prompt": {**defaults, "subset": subsets}}
    return {"config_file.toml": config_file, "dataset_config.toml": dataset_config, "sample_prompt.toml": sample_prompt}


def export_kohya(cfg: DiffusionConfig, folder: str | Path) -> dict:
    """Write config_file.toml, dataset_config.toml and sample_prompt.toml; returns paths and the command."""
    from trainer.planning.config_io import write_data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in kohya_files(cfg, folder).items():
        path = folder / name
        write_data(data, path)
        written.append(str(path))
    command = f"accelerate launch {SCRIPTS[cfg.model.base]} --config_file {folder.resolve() / 'config_file.toml'}"
    return {"files": written, "command": command, "steps": step_plan(cfg)}


def diffusion_json_schema() -> dict:
    schema = DiffusionConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tunepilot diffusion LoRA config (kohya sd-scripts)"
    return schema
