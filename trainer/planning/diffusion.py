"""Diffusion LoRA configs for kohya-ss/sd-scripts: reading, step calculator, rules and export (the schema
itself is in diffusion_schema, re-exported here).

tunepilot validates and writes these configs; it does not train diffusion models. A tunepilot
diffusion config (TOML/YAML, sections below) becomes kohya's three files:
- `config_file.toml` (passed as `--config_file`; sd-scripts flattens its sections into arguments),
- `dataset_config.toml` (`[general]` + `[[datasets]]` with `[[datasets.subsets]]`),
- `sample_prompt.toml` (`[prompt]` defaults + `[[prompt.subset]]` prompts).

Images are found the way sd-scripts finds them: a subset's `image_dir` is globbed NON-recursively
(only files directly inside it count), and a training folder laid out kohya-style (`10_sks dog/`,
`20_style/` under one parent, as `--train_data_dir` expects) gives one subset per `N_name` folder with
N repeats and `name` as its class tokens. Export writes one `[[datasets.subsets]]` per such folder
with `image_dir` pointing AT the folder and `num_repeats` = N, so kohya reads exactly these images.

Steps: sum(images x repeats) over the subsets (doubled when regularisation images are present, as
kohya does) / batch size (rounded up), / gradient accumulation, per epoch, times epochs (unless
max_train_steps). Rules cite knowledge/docs/<lang>/lora.md ("Diffusion LoRA with kohya sd-scripts"),
kohya-folders-and-steps.md and stable-diffusion-kohya.md.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from pydantic import ValidationError

from trainer.models.device import Environment
from trainer.planning.diffusion_schema import (  # noqa: F401 - the schema's names are part of this module's API
    NATIVE_RESOLUTION,
    DiffusionConfig,
    DiffusionDataset,
    DiffusionHardware,
    DiffusionModel,
    DiffusionNetwork,
    DiffusionSample,
    DiffusionSaving,
    DiffusionSubset,
    DiffusionTraining,
    SamplePrompt,
    diffusion_preset,
    resolution_pair,
)
from trainer.planning.rules import Finding, Rule, ValidationReport

# The extensions sd-scripts globs for, in lower and upper case only (its glob is case-sensitive on Linux).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
KOHYA_IMAGE_SUFFIXES = IMAGE_SUFFIXES | {ext.upper() for ext in IMAGE_SUFFIXES}
REPEAT_FOLDER = re.compile(r"^(\d+)_(.*)$")  # kohya's train_data_dir convention: "10_sks dog"
SCRIPTS = {"sd15": "train_network.py", "sd2": "train_network.py", "sdxl": "sdxl_train_network.py", "flux": "flux_train_network.py"}
NETWORK_MODULES = {"sd15": "networks.lora", "sd2": "networks.lora", "sdxl": "networks.lora", "flux": "networks.lora_flux"}


# ---------------------------------------------------------------- I/O

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


# ---------------------------------------------------------------- folders and steps

def kohya_images(folder: str | Path) -> list[Path]:
    """The images sd-scripts would read from `folder`: files directly inside it (no recursion)."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in KOHYA_IMAGE_SUFFIXES)


def count_images(image_dir: str) -> int | None:
    """Images directly in `image_dir` (None when it is not a folder), as sd-scripts counts them."""
    folder = Path(image_dir).expanduser() if image_dir else None
    if folder is None or not folder.is_dir():
        return None
    return len(kohya_images(folder))


def repeat_folders(parent: str | Path) -> tuple[list[tuple[Path, int, str]], list[str]]:
    """kohya's train_data_dir rule: subfolders named `N_name` -> (folder, N, name); other subfolders by name."""
    path = Path(parent).expanduser()
    found, other = [], []
    if not path.is_dir():
        return found, other
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        m = REPEAT_FOLDER.match(child.name)
        if m:
            found.append((child, int(m.group(1)), m.group(2)))
        else:
            other.append(child.name)
    return found, other


def resolve_subsets(cfg: DiffusionConfig) -> list[dict]:
    """The image folders kohya will read, each with its repeats and image count (None when unknown).

    Explicit `dataset.subsets` win; else N_name folders under image_dir (and reg_dir) give one subset
    each; else image_dir itself is one subset with `dataset.repeats`.
    """
    d = cfg.dataset
    out = []
    if d.subsets:
        for sub in d.subsets:
            out.append({"image_dir": sub.image_dir, "repeats": sub.repeats, "class_tokens": sub.class_tokens,
                        "is_reg": sub.is_reg, "images": count_images(sub.image_dir), "from": "subsets"})
        return out
    for parent, is_reg in ((d.image_dir, False), (d.reg_dir, True)):
        if not parent:
            continue
        folders, _ = repeat_folders(parent)
        for folder, n, name in folders:
            out.append({"image_dir": str(folder.resolve()), "repeats": n, "class_tokens": name or None,
                        "is_reg": is_reg, "images": len(kohya_images(folder)), "from": "folder name"})
    if not any(not s["is_reg"] for s in out):
        images = d.num_images if d.num_images is not None else count_images(d.image_dir)
        out.insert(0, {"image_dir": d.image_dir, "repeats": d.repeats, "class_tokens": d.trigger_word,
                       "is_reg": False, "images": images, "from": "dataset.repeats"})
    return out


def step_plan(cfg: DiffusionConfig) -> dict:
    """sum(images x repeats) (x2 with regularisation images) / batch (rounded up) / accumulation per epoch, x epochs."""
    t = cfg.training
    subsets = resolve_subsets(cfg)
    train = [s for s in subsets if not s["is_reg"]]
    reg = [s for s in subsets if s["is_reg"] and s["images"]]
    known = all(s["images"] is not None for s in train)
    images = sum(s["images"] for s in train) if known else None
    repeats = {s["repeats"] for s in train}
    plan = {"images": images, "repeats": repeats.pop() if len(repeats) == 1 else None, "batch_size": t.batch_size,
            "gradient_accumulation_steps": t.gradient_accumulation_steps, "epochs": t.epochs,
            "steps_per_epoch": None, "total_steps": t.max_train_steps, "subsets": subsets}
    if images is None or any(s["repeats"] < 1 for s in train) or t.batch_size < 1 or t.gradient_accumulation_steps < 1:
        return plan
    seen = sum(s["images"] * s["repeats"] for s in train)
    reg_factor = 2 if reg else 1  # kohya repeats the regularisation images to match, so each epoch is twice as long
    batches = math.ceil(seen * reg_factor / t.batch_size)
    per_epoch = math.ceil(batches / t.gradient_accumulation_steps)
    plan.update(images_seen_per_epoch=seen * reg_factor, steps_per_epoch=per_epoch)
    if t.max_train_steps is None:
        plan["total_steps"] = per_epoch * max(t.epochs, 0)
    if len(train) == 1:
        head = f"{images} images x {train[0]['repeats']} repeats"
    else:
        head = "(" + " + ".join(f"{s['images']} x {s['repeats']} [{Path(s['image_dir']).name}]" for s in train) + f") = {seen} images seen"
    if reg_factor == 2:
        head += " x 2 (regularisation images)"
    accum = f" / accumulation {t.gradient_accumulation_steps}" if t.gradient_accumulation_steps > 1 else ""
    plan["formula"] = (f"{head} / batch {t.batch_size}{accum} = {per_epoch} steps per epoch"
                       + (f" x {t.epochs} epochs = {plan['total_steps']} steps" if t.max_train_steps is None
                          else f"; max_train_steps = {t.max_train_steps}"))
    return plan


def folder_problems(cfg: DiffusionConfig) -> dict:
    """What kohya would silently skip: non-N_name subfolders and images beside N_name folders (in image_dir
    and reg_dir), a reg_dir without N_name folders, and subsets whose images sit one level too deep."""
    d = cfg.dataset
    out: dict = {"ignored_folders": [], "loose_images": [], "empty_subsets": []}
    parents = [] if d.subsets else [p for p in (d.image_dir, d.reg_dir) if p]
    for parent in parents:
        folders, other = repeat_folders(parent)
        loose = len(kohya_images(parent))
        if folders and other:
            out["ignored_folders"].append({"dir": parent, "names": other})
        if loose and (folders or parent == d.reg_dir):  # reg_data_dir is only ever read through N_name folders
            out["loose_images"].append({"dir": parent, "n": loose})
    plain = [d.image_dir] if d.image_dir and not repeat_folders(d.image_dir)[0] else []
    for folder in [s.image_dir for s in d.subsets] if d.subsets else plain:
        path = Path(folder).expanduser()
        if path.is_dir() and not kohya_images(path):
            nested = sum(len(kohya_images(p)) for p in path.iterdir() if p.is_dir())
            if nested:
                out["empty_subsets"].append({"dir": folder, "nested": nested})
    return out


# ---------------------------------------------------------------- rules

class DiffusionContext:
    def __init__(self, cfg: DiffusionConfig, env: Environment):
        self.cfg = cfg
        self.env = env
        self.plan = step_plan(cfg)
        self.folders = folder_problems(cfg)
        self._memory = None

    @property
    def memory(self) -> dict:
        if self._memory is None:
            from trainer.planning.diffusion_memory import estimate_diffusion

            self._memory = estimate_diffusion(self.cfg, env=self.env)
        return self._memory


STEPS = "Steps, repeats and epochs"
DIM = "Network dim and alpha for images"
LR = "Learning rates and optimizers for images"
RES = "Resolution and model versions"
PREC = "Mixed precision, xformers and samples"
FOLDERS = "Folder names: N_name and repeats"
NO_RECURSION = "image_dir is read without recursion"
VRAM = "VRAM at 1024 px with fp16 and xformers"
ZH = {STEPS: "步数、重复次数与轮数", DIM: "图像 LoRA 的 dim 与 alpha", LR: "图像 LoRA 的学习率与优化器",
      RES: "分辨率与模型版本", PREC: "混合精度、xformers 与采样",
      FOLDERS: "文件夹命名：N_name 与重复次数", NO_RECURSION: "image_dir 不递归读取",
      VRAM: "1024 分辨率下 fp16 + xformers 的显存占用"}
DOCS = {FOLDERS: "kohya-folders-and-steps.md", NO_RECURSION: "kohya-folders-and-steps.md", VRAM: "stable-diffusion-kohya.md"}
ADAPTIVE = ("Prodigy", "DAdaptAdam")
BNB = ("AdamW8bit", "PagedAdamW8bit", "Lion8bit")


def _dr(id, severity, field, message, heading, check) -> Rule:
    return Rule(id, severity, field, message, DOCS.get(heading, "lora.md"), heading, ZH[heading], check)


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
    _dr("diffusion-accumulation-min", "error", "training.gradient_accumulation_steps",
        "training.gradient_accumulation_steps must be at least 1.", STEPS,
        lambda c: c.cfg.training.gradient_accumulation_steps < 1),
    _dr("diffusion-images-nested", "error", "dataset.image_dir",
        "{dir} holds no images directly but {nested} in its subfolders; sd-scripts reads image_dir without recursion, "
        "so it would train on 0 images. Point image_dir at the folder that holds the images (one subset per folder), "
        "or name the subfolders N_name (10_sks dog) under a train_data_dir.", NO_RECURSION,
        lambda c: c.folders["empty_subsets"][0] if c.folders["empty_subsets"] else None),
    _dr("diffusion-folder-without-repeats", "warning", "dataset.image_dir",
        "Subfolder(s) {names} of {dir} have no N_ prefix; kohya skips folders not named like 10_name, so their images "
        "are not trained. Rename them (e.g. 10_{first}).", FOLDERS,
        lambda c: {"names": ", ".join(c.folders["ignored_folders"][0]["names"]), "dir": c.folders["ignored_folders"][0]["dir"],
                   "first": c.folders["ignored_folders"][0]["names"][0]} if c.folders["ignored_folders"] else None),
    _dr("diffusion-loose-images", "warning", "dataset.image_dir",
        "{n} image(s) sit directly in {dir}; kohya reads a train_data_dir / reg_data_dir only through its N_name "
        "folders, so these are not trained. Move them into a folder such as 10_name (1_name for regularisation).", FOLDERS,
        lambda c: c.folders["loose_images"][0] if c.folders["loose_images"] else None),
    _dr("diffusion-images-unknown", "error", "dataset.image_dir",
        "No images found: {dir} is missing or holds no .png/.jpg/.webp/.bmp files directly, and dataset.num_images is not set; the step count cannot be computed.", STEPS,
        lambda c: {"dir": ", ".join(s["image_dir"] or "dataset.image_dir (empty)" for s in c.plan["subsets"]
                                    if not s["is_reg"] and not s["images"]) or "dataset.image_dir"} if not c.plan["images"] else None),
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
        "Lion needs about 1/3 of AdamW's learning rate or less (AdamW's usual 1e-4 -> about 3e-5; got {lr:g}).", LR,
        lambda c: {"lr": _lr(c)} if c.cfg.training.optimizer_type in ("Lion", "Lion8bit") and _lr(c) > 3.4e-5 else None),
    _dr("diffusion-optimizer-8bit-needs-cuda", "error", "training.optimizer_type",
        "optimizer_type = \"{opt}\" needs CUDA and bitsandbytes, which {where} lacks; use \"AdamW\" or \"AdaFactor\".", LR,
        lambda c: {"opt": c.cfg.training.optimizer_type, "where": c.env.description}
        if c.cfg.training.optimizer_type in BNB and not (c.env.has_cuda and c.env.has_bitsandbytes) else None),
    _dr("diffusion-text-encoder-lr-unused", "warning", "training.text_encoder_lr",
        "training.text_encoder_lr is set but network.train_unet_only = true, so the text encoder is not trained; remove one.", LR,
        lambda c: c.cfg.network.train_unet_only and c.cfg.training.text_encoder_lr is not None),
    _dr("diffusion-sdxl-flux-only", "error", "training.cache_text_encoder_outputs",
        "{keys} exist only in kohya's SDXL and Flux scripts, not for {base}; turn them off.", PREC,
        lambda c: {"keys": " and ".join(k for k in ("training.cache_text_encoder_outputs", "training.fp8_base")
                                         if getattr(c.cfg.training, k.split(".")[1])), "base": c.cfg.model.base}
        if c.cfg.model.base in ("sd15", "sd2") and (c.cfg.training.cache_text_encoder_outputs or c.cfg.training.fp8_base) else None),
    _dr("diffusion-te-cache-needs-unet-only", "error", "training.cache_text_encoder_outputs",
        "training.cache_text_encoder_outputs frees the text encoders, so they cannot be trained: set network.train_unet_only = true.", PREC,
        lambda c: c.cfg.training.cache_text_encoder_outputs and not c.cfg.network.train_unet_only),
    _dr("diffusion-xformers-and-sdpa", "error", "training.xformers",
        "training.xformers and training.sdpa are both on; pick one attention implementation (sdpa needs no extra package).", PREC,
        lambda c: c.cfg.training.xformers and c.cfg.training.sdpa),
    _dr("diffusion-fp16-sdxl", "warning", "training.mixed_precision",
        "{base} in fp16 overflows (the SDXL VAE and Flux produce NaNs in fp16); use mixed_precision = \"bf16\" on an Ampere or newer GPU.", PREC,
        lambda c: {"base": c.cfg.model.base} if c.cfg.model.base in ("sdxl", "flux") and c.cfg.training.mixed_precision == "fp16" else None),
    _dr("diffusion-bf16-unsupported", "error", "training.mixed_precision",
        "mixed_precision = \"bf16\" but {gpu} has no bf16 support; use \"fp16\" (SD 1.5) or a newer GPU.", PREC,
        lambda c: {"gpu": c.cfg.hardware.gpu} if c.cfg.training.mixed_precision == "bf16" and _gpu_lacks_bf16(c.cfg.hardware.gpu) else None),
    _dr("diffusion-memory-over", "warning", "training.batch_size",
        "Estimated {total:.1f} GB of GPU memory ({formula}) exceeds the {mem:g} GB of {where}; {fix}.", VRAM,
        lambda c: {"total": c.memory["total_gb"], "formula": c.memory["formula"], "mem": c.memory["device_memory_gb"],
                   "where": c.env.description, "fix": c.memory["suggestion"]}
        if c.env.has_cuda and c.memory["device_memory_gb"] and not c.memory["fits"] else None),
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
    for key in ("cache_text_encoder_outputs", "fp8_base"):
        if getattr(t, key):
            training_args[key] = True
    if t.max_train_steps is not None:
        training_args["max_train_steps"] = t.max_train_steps
    if t.gradient_accumulation_steps > 1:
        training_args["gradient_accumulation_steps"] = t.gradient_accumulation_steps
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

    dataset_entry = {"resolution": pair[0] if pair[0] == pair[1] else list(pair), "batch_size": t.batch_size,
                     "enable_bucket": d.enable_bucket, "subsets": dataset_subsets(cfg)}
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


def dataset_subsets(cfg: DiffusionConfig) -> list[dict]:
    """One `[[datasets.subsets]]` table per image folder, `image_dir` pointing AT the folder that holds the
    images (sd-scripts globs it non-recursively) and `num_repeats` = the N of `N_name` (or the set repeats)."""
    explicit = {s.image_dir: s for s in cfg.dataset.subsets}
    out = []
    for sub in resolve_subsets(cfg):
        entry = {"image_dir": sub["image_dir"], "num_repeats": sub["repeats"]}
        tokens = sub["class_tokens"] or cfg.dataset.trigger_word
        if tokens:
            entry["class_tokens"] = tokens
        if sub["is_reg"]:
            entry["is_reg"] = True
        src = explicit.get(sub["image_dir"])
        for key in ("caption_extension", "keep_tokens", "shuffle_caption", "flip_aug"):
            value = getattr(src, key) if src is not None else None
            if value is not None:
                entry[key] = value
        out.append(entry)
    return out


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
