"""The tunepilot diffusion LoRA config (kohya sd-scripts runs): its sections, the family presets, and the
resolution parser — the data model that trainer.planning.diffusion (steps, rules, export),
diffusion_memory (the memory estimate) and diffusion_import (kohya files) share.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class DiffusionSubset(_Section):
    image_dir: str = Field(..., description="Folder holding the images directly (sd-scripts does not look into subfolders).")
    repeats: int = Field(1, description="num_repeats for this folder.")
    class_tokens: str | None = Field(None, description="Caption used for images without a caption file.")
    is_reg: bool = Field(False, description="Regularisation images (prior preservation).")
    caption_extension: str | None = Field(None, description="Overrides dataset.caption_extension for this folder.")
    keep_tokens: int | None = Field(None, description="Overrides dataset.keep_tokens for this folder.")
    shuffle_caption: bool | None = Field(None, description="Overrides dataset.shuffle_caption for this folder.")
    flip_aug: bool | None = Field(None, description="Horizontal flip augmentation.")


class DiffusionDataset(_Section):
    image_dir: str = Field("", description="Folder of training images with caption files beside them, or kohya's "
                           "train_data_dir: a parent of N_name folders (10_sks dog/) whose N is the repeat count.")
    reg_dir: str | None = Field(None, description="kohya's reg_data_dir: N_name folders of regularisation images.")
    subsets: list[DiffusionSubset] = Field(default_factory=list, description="Explicit image folders (as in a kohya "
                                           "dataset config); when given, image_dir/repeats are not used.")
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
    gradient_accumulation_steps: int = Field(1, description="Batches per optimizer step (kohya counts optimizer steps).")
    optimizer_type: Literal["AdamW", "AdamW8bit", "PagedAdamW8bit", "Lion", "Lion8bit", "AdaFactor", "Prodigy", "DAdaptAdam", "SGDNesterov"] = Field(
        "AdamW", description="kohya optimizer_type (AdamW is kohya's default); the 8-bit ones need CUDA and bitsandbytes.")
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
    cache_text_encoder_outputs: bool = Field(False, description="SDXL/Flux: encode captions once and free the text "
                                             "encoders (needs network.train_unet_only).")
    fp8_base: bool = Field(False, description="SDXL/Flux: keep the frozen base in fp8 (kohya's --fp8_base), halving its memory.")
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


# ---------------------------------------------------------------- presets

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
        cfg.training.cache_text_encoder_outputs = True
        cfg.training.fp8_base = True
        cfg.training.learning_rate = 1e-4
        cfg.training.gradient_checkpointing = True
        cfg.training.lr_scheduler = "constant"
    if base == "sd15":
        cfg.network.dim, cfg.network.alpha = 32, 16
        cfg.training.text_encoder_lr = 5e-5
    return cfg


def resolution_pair(resolution: int | str) -> tuple[int, int] | None:
    if isinstance(resolution, int):
        return resolution, resolution
    parts = [p.strip() for p in str(resolution).replace("x", ",").split(",")]
    if len(parts) == 1 and parts[0].isdigit():
        return int(parts[0]), int(parts[0])
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None
