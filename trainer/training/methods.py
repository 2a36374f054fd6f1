"""Fine-tuning methods: how the base model is loaded and which parameters train.

One `apply_method` branches on `method.type` (lora / qlora / full / freeze); the recipe never copies
itself per method. The precision each method trains in is part of the device/dtype policy in
`trainer.models.device` (`training_precision`).
"""

from __future__ import annotations

import torch

from trainer.models.device import Environment, Precision, training_precision
from trainer.planning.schema import TrainConfig
from tunepilot.core.errors import UserError


class MethodError(UserError, ValueError):
    """The method cannot run as configured here (e.g. QLoRA without CUDA); the message says what to change."""


def precision_for(cfg: TrainConfig, device: str) -> Precision:
    """The precision `cfg`'s method trains in on `device` (`trainer.models.device.training_precision`)."""
    return training_precision(cfg.method.type, device, cfg.model.dtype)


def check_method(cfg: TrainConfig, device: str) -> None:
    """Refuse early, with the fix, when the method or optimizer cannot run on this machine."""
    if cfg.method.type == "qlora":
        if device != "cuda":
            raise MethodError("QLoRA needs a CUDA GPU (4-bit bitsandbytes kernels); use method.type = \"lora\" on this machine.")
        if not Environment.detect().has_bitsandbytes:
            raise MethodError("QLoRA needs the bitsandbytes package; install it (pip install bitsandbytes) or use method.type = \"lora\".")
    if cfg.optimizer.type in ("adamw_8bit", "paged_adamw_8bit", "lion", "lion_8bit"):
        if not Environment.detect().has_bitsandbytes or device != "cuda":
            raise MethodError(f"optimizer.type = {cfg.optimizer.type!r} needs CUDA and bitsandbytes; use \"adamw\" here.")


def load_model(cfg: TrainConfig, base_path, device: str, precision: Precision):
    """The base model, in the dtype the method trains it in (4-bit NF4 for QLoRA)."""
    from transformers import AutoModelForCausalLM

    kwargs = dict(dtype=precision.load_dtype, trust_remote_code=cfg.model.trust_remote_code)
    if cfg.method.type == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=precision.load_dtype if precision.load_dtype != torch.float32 else torch.bfloat16,
        )
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base_path), **kwargs)
    except OSError as exc:
        raise MethodError(f"Cannot load the base model from {base_path}: {str(exc).splitlines()[0]}") from None
    model.config.use_cache = False  # the KV cache is useless (and memory-hungry) while training
    return model


def apply_method(model, cfg: TrainConfig):
    """Make the right parameters trainable for `method.type`; returns the model to train."""
    method = cfg.method
    if method.type in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        if method.type == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.training.gradient_checkpointing)
        lora = LoraConfig(
            r=method.lora_r, lora_alpha=method.lora_alpha, lora_dropout=method.lora_dropout,
            target_modules=method.target_modules, task_type="CAUSAL_LM", bias="none",
        )
        # autocast_adapter_dtype keeps the adapter weights in float32 over a bf16/fp16 base.
        return get_peft_model(model, lora, autocast_adapter_dtype=True)
    if method.type == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if method.type == "freeze":
        for p in model.parameters():
            p.requires_grad_(False)
        layers = decoder_layers(model)
        n = max(1, min(method.freeze_trainable_layers, len(layers)))
        for layer in list(layers)[-n:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        norm = getattr(getattr(model, "model", None), "norm", None)
        if norm is not None:
            for p in norm.parameters():
                p.requires_grad_(True)
        return model
    raise MethodError(f"Unknown method.type {method.type!r}; use lora, qlora, full or freeze.")


def decoder_layers(model):
    """The stack of transformer blocks (the longest ModuleList in the model)."""
    best = None
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and (best is None or len(module) > len(best)):
            best = module
    if best is None:
        raise MethodError("method.type = \"freeze\" could not find the model's layer stack; use lora or full.")
    return best


def trainable_summary(model) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total,
            "trainable_percent": round(100.0 * trainable / max(total, 1), 4)}


OPTIMIZER_NAMES = {
    # schema name -> transformers TrainingArguments.optim
    "adamw": "adamw_torch",
    "adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "lion": "lion_32bit",
    "lion_8bit": "lion_8bit",
    "adafactor": "adafactor",
    "sgd": "sgd",
}
