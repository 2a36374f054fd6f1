"""GPU memory of a kohya diffusion LoRA run, built on one measured anchor and shown with its arithmetic.

The anchor is the figure in knowledge/docs/*/stable-diffusion-kohya.md ("VRAM at 1024 px with fp16 and
xformers"): fine-tuning SD at 1024 x 1024 with fp16 and xformers takes about 17.1 GB at batch size 1
and about 26.7 GB at batch size 4. Two numbers give two parts:

- per image: (26.7 - 17.1) / 3 = 3.2 GB of activations for each extra 1024 x 1024 image;
- fixed: 17.1 - 3.2 = 13.9 GB, which is what 16 bytes per parameter (fp32 weights, gradients and two
  AdamW states) of the 0.86 B-parameter SD U-Net come to (13.8 GB) — so the anchor splits cleanly.

A LoRA run keeps the base frozen in the training precision (2 bytes per parameter in fp16/bf16) and
pays the 16 bytes only for the LoRA weights; activations are the anchor's 3.2 GB per image, scaled by
pixel count and — an assumption, labelled as such in the output — by the square root of the denoiser's
size for SDXL and Flux (their layers are wider, not deeper, than SD's), and cut to 30% by gradient
checkpointing. `fp8_base` stores the frozen denoiser in 1 byte per parameter; with
`cache_text_encoder_outputs` the text encoders leave the GPU after encoding the captions. The result is a planning figure (it decides
batch size, checkpointing and the optimizer in `config diffusion init`), not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.models.device import Environment
from trainer.planning.diffusion_schema import DiffusionConfig, resolution_pair

GB = 1e9
ANCHOR_BS1_GB = 17.1
ANCHOR_BS4_GB = 26.7
ANCHOR_PER_IMAGE_GB = (ANCHOR_BS4_GB - ANCHOR_BS1_GB) / 3  # 3.2 GB per 1024 x 1024 image
ANCHOR_FIXED_GB = ANCHOR_BS1_GB - ANCHOR_PER_IMAGE_GB  # 13.9 GB
ANCHOR_PIXELS = 1024 * 1024
CHECKPOINTING_KEEPS = 0.3  # activations kept with gradient checkpointing (assumption: ~70% saved)
NO_FAST_ATTENTION = 1.5  # neither xformers nor sdpa: naive attention (assumption)
OVERHEAD_GB = 1.0  # CUDA context, allocator slack, the dataloader's pinned batch


@dataclass(frozen=True)
class Family:
    label: str
    denoiser_params: float  # U-Net (SD) or transformer (Flux)
    text_encoder_params: float
    vae_params: float
    lora_params_per_rank: float  # LoRA weights per unit of network_dim (U-Net + text encoders)


# Parameter counts from the model cards; LoRA size per rank from the usual file sizes (the seed's
# "dim 64 -> ~70 MB, dim 128 -> ~140 MB" for SD 1.5 = ~0.55 M fp16 weights per rank).
FAMILIES = {
    "sd15": Family("SD 1.5", 0.86e9, 0.123e9, 0.084e9, 0.55e6),
    "sd2": Family("SD 2.x", 0.87e9, 0.354e9, 0.084e9, 0.6e6),
    "sdxl": Family("SDXL", 2.57e9, 0.817e9, 0.084e9, 2.7e6),
    "flux": Family("Flux.1", 11.9e9, 4.88e9, 0.084e9, 4.7e6),
}
# Bytes per trainable parameter: fp32 master weight + gradient + optimizer states.
OPTIMIZER_BYTES = {"AdamW": 16, "AdamW8bit": 10, "PagedAdamW8bit": 10, "Lion": 12, "Lion8bit": 9, "AdaFactor": 9,
                   "Prodigy": 24, "DAdaptAdam": 24, "SGDNesterov": 12}


def size_factor(base: str) -> float:
    """Activation scale vs SD's U-Net: the square root of the parameter ratio (an assumption)."""
    return (FAMILIES[base].denoiser_params / FAMILIES["sd15"].denoiser_params) ** 0.5


def activation_gb_per_image(cfg: DiffusionConfig) -> float:
    w, h = resolution_pair(cfg.dataset.resolution) or (1024, 1024)
    per = ANCHOR_PER_IMAGE_GB * (w * h / ANCHOR_PIXELS) * size_factor(cfg.model.base)
    if cfg.training.gradient_checkpointing:
        per *= CHECKPOINTING_KEEPS
    if not (cfg.training.xformers or cfg.training.sdpa):
        per *= NO_FAST_ATTENTION
    return per


def _breakdown(cfg: DiffusionConfig, batch: int) -> dict[str, float]:
    fam = FAMILIES[cfg.model.base]
    t = cfg.training
    weight_bytes = 4 if t.mixed_precision == "no" else 2
    denoiser_bytes = 1 if t.fp8_base else weight_bytes
    text_encoders = 0 if t.cache_text_encoder_outputs else fam.text_encoder_params * weight_bytes
    vae = 0 if t.cache_latents else fam.vae_params * weight_bytes  # kohya moves the VAE off the GPU after caching
    lora = fam.lora_params_per_rank * max(cfg.network.dim, 0) * (0.85 if cfg.network.train_unet_only else 1.0)
    return {
        "frozen base weights": (fam.denoiser_params * denoiser_bytes + text_encoders + vae) / GB,
        "LoRA weights + gradients + optimizer": lora * OPTIMIZER_BYTES.get(t.optimizer_type, 16) / GB,
        "activations": activation_gb_per_image(cfg) * batch,
        "CUDA overhead": OVERHEAD_GB,
    }


def estimate_diffusion(cfg: DiffusionConfig, env: Environment | None = None, batch_size: int | None = None) -> dict:
    """Peak GPU memory of the run; `env` (or the config's hardware.gpu) gives the memory it must fit in."""
    from trainer.planning.hardware import lookup_gpu

    gpu = lookup_gpu(cfg.hardware.gpu)
    env = Environment.for_gpu(gpu) if gpu is not None else env
    batch = batch_size or max(cfg.training.batch_size, 1)
    parts = _breakdown(cfg, batch)
    total = sum(parts.values())
    memory = env.cuda_memory_gb if env is not None and env.has_cuda else None
    fits = None if memory is None else total <= memory
    largest = None
    if memory is not None:
        largest = 0
        for b in range(1, 33):
            if sum(_breakdown(cfg, b).values()) <= memory:
                largest = b
    fam = FAMILIES[cfg.model.base]
    w, h = resolution_pair(cfg.dataset.resolution) or (1024, 1024)
    per_image = activation_gb_per_image(cfg)
    formula = (f"{parts['frozen base weights']:.1f} GB frozen {fam.label} weights + {per_image:.2f} GB x batch {batch} "
               f"activations at {w}x{h} + {parts['LoRA weights + gradients + optimizer']:.2f} GB LoRA/optimizer "
               f"+ {OVERHEAD_GB:.0f} GB overhead")
    return {
        "total_gb": round(total, 2),
        "breakdown": {k: round(v, 3) for k, v in parts.items()},
        "device_memory_gb": memory,
        "fits": fits,
        "max_batch_size": largest,
        "formula": formula,
        "suggestion": _suggestion(cfg),
        "basis": basis(cfg),
    }


def _suggestion(cfg: DiffusionConfig) -> str:
    steps = []
    if not cfg.training.gradient_checkpointing:
        steps.append("turn on training.gradient_checkpointing")
    if cfg.training.batch_size > 1:
        steps.append("lower training.batch_size")
    if cfg.training.optimizer_type == "AdamW":
        steps.append('use optimizer_type = "AdamW8bit" (slightly worse results, less memory)')
    return ", ".join(steps) or "use a larger GPU or a lower resolution"


def basis(cfg: DiffusionConfig) -> list[dict]:
    """The figures the estimate rests on, with where each comes from."""
    fam = FAMILIES[cfg.model.base]
    src = "knowledge/docs/en/stable-diffusion-kohya.md § VRAM at 1024 px with fp16 and xformers"
    return [
        {"figure": "SD fine-tuning at 1024 px, fp16 + xformers, batch 1", "gb": ANCHOR_BS1_GB, "source": src},
        {"figure": "the same at batch 4", "gb": ANCHOR_BS4_GB, "source": src},
        {"figure": "activations per extra 1024x1024 image = (26.7 - 17.1) / 3", "gb": round(ANCHOR_PER_IMAGE_GB, 2),
         "source": "derived"},
        {"figure": "fixed part 17.1 - 3.2 (~16 bytes x 0.86 B U-Net parameters = 13.8 GB)", "gb": round(ANCHOR_FIXED_GB, 2),
         "source": "derived"},
        {"figure": f"{fam.label} denoiser parameters (activations scaled by {size_factor(cfg.model.base):.2f}x vs SD)",
         "gb": None, "value": fam.denoiser_params, "source": "model card; square-root scaling is an assumption"},
        {"figure": "gradient checkpointing keeps this share of activations", "gb": None, "value": CHECKPOINTING_KEEPS,
         "source": "assumption"},
    ]


# ---------------------------------------------------------------- settings that fit the target GPU

KOHYA_DOC = "stable-diffusion-kohya.md"
VRAM_HEADING = "VRAM at 1024 px with fp16 and xformers"
OPT_HEADING = "Optimizers for kohya training"
BATCH_DOC, BATCH_HEADING = "image-lora-training.md", "Batch size by VRAM"


def fit_to_gpu(cfg: DiffusionConfig, env: Environment) -> list[dict]:
    """Adjust precision, batch size, checkpointing and optimizer so the run is valid and fits `env`.

    Returns one {"field", "value", "reason", "source", "heading"} per choice. Order of remedies when
    memory is short (the docs' advice): gradient checkpointing, then batch size 1, then 8-bit AdamW —
    never an 8-bit optimizer where CUDA + bitsandbytes are missing, since validate rejects it there.
    """
    t = cfg.training
    choices = []

    def choose(field, value, reason, doc=KOHYA_DOC, heading=OPT_HEADING):
        section, key = field.split(".")
        setattr(getattr(cfg, section), key, value)
        choices.append({"field": field, "value": value, "reason": reason, "source": f"en/{doc}", "heading": heading})

    can_8bit = env.has_cuda and env.has_bitsandbytes
    if not can_8bit:
        choose("training.optimizer_type", "AdamW", f"AdamW is kohya's default; 8-bit optimizers need CUDA and "
               f"bitsandbytes, which {env.description} lacks")
    else:
        choose("training.optimizer_type", "AdamW", "AdamW is kohya's default; 8-bit AdamW only when memory is short")
    if t.mixed_precision == "bf16" and env.has_cuda and not env.cuda_bf16:
        choose("training.mixed_precision", "fp16", f"{env.description} has no bf16; fp16 is the fallback", heading=VRAM_HEADING)
    if not env.has_cuda or not env.cuda_memory_gb:
        choices.append({"field": "training.batch_size", "value": t.batch_size,
                        "reason": f"{env.description} has no CUDA GPU, so memory cannot be checked; pass --gpu with the card that will train",
                        "source": f"en/{BATCH_DOC}", "heading": BATCH_HEADING})
        return choices
    memory = env.cuda_memory_gb
    # The docs' rule of thumb: batch 1 at <= 6 GB, 4 (or 6) from 12 GB; the estimate has the last word.
    target = 1 if memory <= 6 else (2 if memory < 12 else 4)
    for remedy in ("none", "gradient_checkpointing", "batch", "8bit"):
        if remedy == "gradient_checkpointing" and not t.gradient_checkpointing:
            choose("training.gradient_checkpointing", True, "the run does not fit without it: activations are the part that grows "
                   "with resolution and batch size", heading=VRAM_HEADING)
        if remedy == "batch":
            target = 1
        if remedy == "8bit":
            if not can_8bit or t.optimizer_type != "AdamW":
                break
            choose("training.optimizer_type", "AdamW8bit", "memory is short: 8-bit AdamW keeps the optimizer states in "
                   "8 bits at a slight cost in quality")
        fitting = [b for b in range(target, 0, -1)
                   if estimate_diffusion(cfg, env=env, batch_size=b)["total_gb"] <= memory]
        if fitting:
            est = estimate_diffusion(cfg, env=env, batch_size=fitting[0])
            choose("training.batch_size", fitting[0], f"estimated {est['total_gb']:.1f} GB of {memory:g} GB at batch {fitting[0]} "
                   f"({est['formula']}); batch 1 at <= 6 GB, 4 from 12 GB", doc=BATCH_DOC, heading=BATCH_HEADING)
            return choices
    est = estimate_diffusion(cfg, env=env, batch_size=1)
    choose("training.batch_size", 1, f"does not fit even at batch 1: estimated {est['total_gb']:.1f} GB of {memory:g} GB; "
           "lower the resolution or use a larger GPU", doc=BATCH_DOC, heading=BATCH_HEADING)
    return choices


def plan_diffusion(base: str = "sdxl", image_dir: str = "", pretrained_model: str = "", gpu: str | None = None,
                   env: Environment | None = None) -> tuple[DiffusionConfig, list[dict]]:
    """`config diffusion init`: the family's preset, made valid for and fitted to the target GPU
    (`gpu` by name, else this machine)."""
    from trainer.planning.diffusion_schema import NATIVE_RESOLUTION, diffusion_preset
    from trainer.planning.hardware import lookup_gpu
    from tunepilot.core.errors import UserError

    if base not in NATIVE_RESOLUTION:
        raise UserError(f"unknown base {base!r}; choose one of: {', '.join(NATIVE_RESOLUTION)}")
    cfg = diffusion_preset(base, image_dir=image_dir, pretrained_model=pretrained_model)
    if gpu:
        found = lookup_gpu(gpu)
        if found is None:
            raise UserError(f"unknown GPU {gpu!r}; write it as on the card, e.g. \"RTX 4090\", \"A100 80G\" or \"T4\"")
        cfg.hardware.gpu = found.name
        env = Environment.for_gpu(found)
    else:
        env = env or Environment.detect()
    return cfg, fit_to_gpu(cfg, env)
