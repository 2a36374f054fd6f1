"""Starting configs (`preset`) and the reasons behind their values (`explain`).

Presets: `lora`, `qlora`, `full`, `freeze` and `openai-style`. The openai-style preset follows the
defaults OpenAI documents for its fine-tuning API: 4 epochs (the API's original default), a batch of
about 0.2% of the training examples clamped to [1, 256], and a learning-rate multiplier that grows
with the batch size (0.05 / 0.1 / 0.2 in OpenAI's terms; here applied to the LoRA base rate of 2e-4).
Values derived from the data (`n_examples`) come with the numbers that drove them in `explain`.
"""

from __future__ import annotations

import math

from trainer.planning.schema import TrainConfig
from tunepilot.core.errors import UserError

PRESETS = ("lora", "qlora", "full", "freeze", "openai-style")
LORA_BASE_LR = 2e-4
MAX_DEVICE_BATCH = 8  # larger effective batches come from gradient accumulation


class PresetError(UserError, ValueError):
    """An unknown preset name (the message lists the known ones)."""


def _base() -> TrainConfig:
    cfg = TrainConfig()
    cfg.dataset.max_seq_length = 1024
    cfg.training.epochs = 3
    cfg.training.batch_size = 4
    cfg.training.gradient_accumulation_steps = 4
    cfg.optimizer.lr_scheduler = "cosine"
    cfg.optimizer.warmup_ratio = 0.03
    return cfg


def openai_batch_size(n_examples: int | None) -> int:
    """OpenAI-style effective batch: ~0.2% of the examples, at least 1, at most 256."""
    if not n_examples:
        return 4
    return int(min(256, max(1, round(0.002 * n_examples))))


def openai_lr_multiplier(batch: int) -> float:
    """Larger batches take larger learning rates (OpenAI's 0.05 / 0.1 / 0.2 multipliers)."""
    if batch <= 4:
        return 0.05
    if batch <= 32:
        return 0.1
    return 0.2


def openai_learning_rate(multiplier: float) -> float:
    """OpenAI's learning-rate multiplier -> a LoRA learning rate: the middle multiplier (0.1) is the LoRA base rate."""
    return LORA_BASE_LR * multiplier / 0.1


def split_batch(effective: int) -> tuple[int, int]:
    """(per-device batch, accumulation steps) whose product is exactly `effective`, device batch <= 8."""
    device = max(d for d in range(1, min(effective, MAX_DEVICE_BATCH) + 1) if effective % d == 0)
    return device, effective // device


def preset(name: str, n_examples: int | None = None) -> TrainConfig:
    """A validated starting config; with `n_examples` the batch (and steps) are fitted to the data."""
    key = name.strip().lower().replace("_", "-")
    if key not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    cfg = _base()
    if key == "lora":
        cfg.method.type = "lora"
        cfg.optimizer.learning_rate = 2e-4
    elif key == "qlora":
        cfg.method.type = "qlora"
        cfg.model.dtype = "bfloat16"
        cfg.optimizer.type = "paged_adamw_8bit"
        cfg.optimizer.learning_rate = 2e-4
        cfg.training.gradient_checkpointing = True
    elif key == "full":
        cfg.method.type = "full"
        cfg.optimizer.learning_rate = 2e-5
        cfg.optimizer.weight_decay = 0.01
        cfg.training.gradient_checkpointing = True
    elif key == "freeze":
        cfg.method.type = "freeze"
        cfg.method.freeze_trainable_layers = 2
        cfg.optimizer.learning_rate = 5e-5
    else:  # openai-style
        cfg.method.type = "lora"
        cfg.training.epochs = 4
        effective = openai_batch_size(n_examples)
        cfg.training.batch_size, cfg.training.gradient_accumulation_steps = split_batch(effective)
        cfg.optimizer.learning_rate = openai_learning_rate(openai_lr_multiplier(effective))
        cfg.optimizer.warmup_ratio = 0.0 if effective > 1 and n_examples and n_examples < 100 else 0.03
        cfg.optimizer.lr_scheduler = "linear"
    if n_examples and key != "openai-style":
        # Never accumulate past the data: an effective batch larger than the set is one step per epoch.
        effective = cfg.training.batch_size * cfg.training.gradient_accumulation_steps
        if effective > n_examples:
            cfg.training.batch_size, cfg.training.gradient_accumulation_steps = split_batch(max(1, min(effective, n_examples)))
    # A fresh model object so `model_fields_set` only holds what a user would have written.
    return TrainConfig.model_validate(cfg.to_dict())


def steps_per_epoch(cfg: TrainConfig, n_examples: int) -> int:
    train = n_examples * (1 - cfg.dataset.val_split) if not cfg.dataset.eval_path else n_examples
    return max(1, math.ceil(train / (cfg.training.batch_size * cfg.training.gradient_accumulation_steps)))


def explain(cfg: TrainConfig, n_examples: int | None = None) -> list[dict]:
    """Why each important value is what it is: [{"field", "value", "reason", "source", "heading"}]."""
    out: list[dict] = []

    def add(field: str, value, reason: str, doc: str, heading: str) -> None:
        out.append({"field": field, "value": value, "reason": reason, "source": f"en/{doc}", "heading": heading})

    m, o, t = cfg.method, cfg.optimizer, cfg.training
    method_reason = {
        "lora": "LoRA trains small low-rank adapters on a frozen base: a fraction of a percent of the parameters, so it fits on modest hardware and trains fast.",
        "qlora": "QLoRA keeps the frozen base in 4-bit NF4 and trains LoRA adapters on top: the smallest memory footprint, CUDA only.",
        "full": "Full fine-tuning updates every weight: the most capacity, about 16-18 bytes of memory per parameter before activations.",
        "freeze": f"Freeze tuning trains only the last {m.freeze_trainable_layers} layers and keeps the rest fixed: cheaper than full fine-tuning, no adapters to merge.",
    }[m.type]
    add("method.type", m.type, method_reason, "lora.md" if m.type != "qlora" else "qlora.md",
        "How LoRA works" if m.type != "qlora" else "What QLoRA does")
    if m.type in ("lora", "qlora"):
        add("method.lora_r", m.lora_r, f"Rank {m.lora_r}: 8-64 covers most tasks; higher ranks help when the new data is far from what the model knows.",
            "lora.md", "Rank (r)")
        ratio = m.lora_alpha / m.lora_r if m.lora_r else float("nan")
        add("method.lora_alpha", m.lora_alpha, f"alpha/r = {ratio:g}: the update is scaled by alpha/r; alpha = 2 x r is a common, stable choice.",
            "lora.md", "Alpha and the alpha/rank ratio")
        add("method.lora_dropout", m.lora_dropout, "A little dropout on the adapter input regularises small datasets.", "lora.md", "Dropout")
        add("method.target_modules", m.target_modules, "Adapters on all linear layers (attention and MLP) match full fine-tuning more closely than attention-only adapters.",
            "lora.md", "Target modules")

    lr_reason = f"{o.learning_rate:g} is the usual peak for {m.type}"
    if m.type in ("full", "freeze"):
        lr_reason += ": every base weight moves, so the rate is about ten times below LoRA's"
    if o.type in ("lion", "lion_8bit"):
        lr_reason += "; Lion takes a rate 3-10x smaller than AdamW"
    effective = t.batch_size * t.gradient_accumulation_steps
    openai = _is_openai_style(cfg, n_examples)
    if openai:
        mult = openai_lr_multiplier(effective)
        lr_reason = (f"openai-style: batch {effective} -> learning-rate multiplier {mult} (0.05 up to batch 4, 0.1 up to 32, 0.2 above), "
                     f"applied to the LoRA base: {LORA_BASE_LR:g} x {mult}/0.1 = {o.learning_rate:g}")
    add("optimizer.learning_rate", o.learning_rate, lr_reason + ".", "hyperparameters.md", "Learning rate")
    add("optimizer.type", o.type, {
        "adamw": "AdamW is the default and works everywhere; it keeps two float32 moments (8 bytes per trainable parameter).",
        "adamw_8bit": "8-bit AdamW stores the moments in 8 bits: 2 bytes per trainable parameter instead of 8 (CUDA + bitsandbytes).",
        "paged_adamw_8bit": "Paged 8-bit AdamW: 8-bit moments that can spill to CPU memory on spikes (CUDA + bitsandbytes).",
        "lion": "Lion keeps one moment (4 bytes per parameter) and needs a smaller learning rate than AdamW (bitsandbytes' implementation: CUDA only).",
        "lion_8bit": "8-bit Lion: one 8-bit moment per parameter (CUDA + bitsandbytes).",
        "adafactor": "Adafactor factors the second moment into row and column statistics: almost no optimizer memory.",
        "sgd": "Plain SGD keeps no state; it needs careful learning-rate tuning for transformers.",
    }[o.type], "optimizers.md", _optimizer_heading(o.type))
    add("optimizer.warmup_ratio", o.warmup_ratio, f"The first {o.warmup_ratio:.0%} of steps ramp the learning rate up from 0, which steadies the first updates; then a {o.lr_scheduler} schedule.",
        "hyperparameters.md", "Warmup and schedules")

    if n_examples:
        per_epoch = steps_per_epoch(cfg, n_examples)
        total = t.max_steps or math.ceil(per_epoch * t.epochs)
        data_numbers = f" With {n_examples} examples: {per_epoch} optimizer steps per epoch, {total} in total."
    else:
        data_numbers = " (No example count given: pass it to size the batch and see the step count.)"
    epochs_reason = f"{t.epochs:g} passes over the data: enough for style and format, few enough to avoid memorising."
    if openai:
        epochs_reason = "openai-style: 4 epochs, the default OpenAI's fine-tuning API started with."
    add("training.epochs", t.epochs, epochs_reason + data_numbers, "hyperparameters.md", "Epochs and steps")
    if openai:
        raw = 0.002 * n_examples
        batch_reason = (f"openai-style: 0.2% of {n_examples} examples = {raw:g}, rounded and clamped to [1, 256] -> {effective}; "
                        f"run as {t.batch_size} per step x {t.gradient_accumulation_steps} accumulation steps.")
    else:
        batch_reason = (f"Effective batch = batch_size x gradient_accumulation_steps = {t.batch_size} x {t.gradient_accumulation_steps} = {effective}: "
                        "accumulation gives a stable gradient without the memory of a large device batch.")
    add("training.batch_size", t.batch_size, batch_reason, "hyperparameters.md", "Batch size and gradient accumulation")
    add("training.gradient_checkpointing", t.gradient_checkpointing,
        "On: keeps only each layer's input and recomputes the rest in the backward pass, about 20-30% slower for much less activation memory."
        if t.gradient_checkpointing else "Off: faster; turn it on when the memory estimate is tight.",
        "memory.md", "Gradient checkpointing")
    add("dataset.max_seq_length", cfg.dataset.max_seq_length,
        f"Examples are cut at {cfg.dataset.max_seq_length} tokens; activation and logit memory grow linearly with it.",
        "hyperparameters.md", "Sequence length")
    add("model.dtype", cfg.model.dtype, "auto picks bfloat16 where the hardware runs it fast (Ampere GPUs, recent CPUs) and float16/float32 elsewhere."
        if cfg.model.dtype == "auto" else f"{cfg.model.dtype} weights and compute.", "hyperparameters.md", "Device and precision")
    return out


def _is_openai_style(cfg: TrainConfig, n_examples: int | None) -> bool:
    """Whether `cfg` carries the openai-style numbers for this example count (so explain shows them)."""
    if not n_examples:
        return False
    effective = cfg.training.batch_size * cfg.training.gradient_accumulation_steps
    expected_lr = openai_learning_rate(openai_lr_multiplier(effective))
    return (cfg.training.epochs == 4 and effective == openai_batch_size(n_examples)
            and math.isclose(cfg.optimizer.learning_rate, expected_lr, rel_tol=1e-6))


def _optimizer_heading(kind: str) -> str:
    return {"adamw": "AdamW", "adamw_8bit": "8-bit and paged optimizers", "paged_adamw_8bit": "8-bit and paged optimizers",
            "lion": "Lion", "lion_8bit": "Lion", "adafactor": "Adafactor", "sgd": "SGD"}[kind]
