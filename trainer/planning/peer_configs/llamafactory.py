"""LLaMA-Factory training YAMLs (`llamafactory-cli train file.yaml`) <-> tunepilot configs.

A LLaMA-Factory file is one flat mapping of its own arguments (model, method, dataset) and Hugging
Face `TrainingArguments` (output, train). `import_config` maps each key; `export_config` writes the
reverse. Datasets stay names of a `dataset_info.json` registry (`dataset` + `dataset_dir`), which
tunepilot reads directly (`trainer.data.dataset_info`).

Where LLaMA-Factory's default differs from tunepilot's and the file relies on it, the importer writes
LLaMA-Factory's value (listed under `defaults`): LoRA rank 8 with alpha = 2 x rank and no dropout,
Hugging Face's learning rate 5e-5, batch size 8, linear schedule without warmup, cutoff 2048 tokens,
a checkpoint every 500 steps, fp32 unless bf16/fp16 is set, and gradient checkpointing on.
"""

from __future__ import annotations

from typing import Any

from trainer.planning.peer_configs.common import (
    HUB,
    LOGGING,
    MEDIA,
    OPTIMIZER_NAMES,
    OPTIMIZERS,
    RESUMES,
    RUN_ELSEWHERE,
    SCHEDULERS,
    TEMPLATE,
    Importer,
    allowed_values,
    as_float,
    has_field,
    is_empty,
)
from trainer.planning.peer_configs.report import MappingReport
from trainer.planning.schema import TrainConfig

NAME = "llamafactory"
TITLE = "LLaMA-Factory"

# Keys only LLaMA-Factory files have (with model_name_or_path + HF names, which axolotl does not use).
SIGNATURE = {"stage", "finetuning_type", "lora_target", "template", "cutoff_len", "dataset_dir", "do_train",
             "lora_rank", "pref_beta", "pref_loss", "quantization_bit", "val_size", "model_name_or_path",
             "per_device_train_batch_size", "num_train_epochs", "lr_scheduler_type", "eval_dataset",
             "preprocessing_num_workers", "plot_loss", "overwrite_output_dir", "max_samples"}

_DIRECT = {
    "model_name_or_path": "model.base_model",
    "trust_remote_code": "model.trust_remote_code",
    "lora_rank": "method.lora_r",
    "lora_alpha": "method.lora_alpha",
    "lora_dropout": "method.lora_dropout",
    "cutoff_len": "dataset.max_seq_length",
    "per_device_train_batch_size": "training.batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps",
    "learning_rate": "optimizer.learning_rate",
    "num_train_epochs": "training.epochs",
    "warmup_ratio": "optimizer.warmup_ratio",
    "weight_decay": "optimizer.weight_decay",
    "seed": "training.seed",
    "output_dir": "saving.output_dir",
    "save_steps": "saving.save_every_n_steps",
    "save_total_limit": "saving.save_total_limit",
    "eval_steps": "training.eval_every_n_steps",
}
_FLOATS = {"learning_rate", "warmup_ratio", "weight_decay", "lora_dropout", "num_train_epochs", "val_size", "pref_beta"}

# Keys with no tunepilot equivalent -> the nearest feature (what to do instead).
_NEAREST = {
    "template": TEMPLATE,
    "max_samples": "unsupported; trim the data file, or use the registry entry's num_samples in dataset_info.json",
    "preprocessing_num_workers": "tunepilot tokenises in the training process; unsupported",
    "preprocessing_batch_size": "tunepilot tokenises in the training process; unsupported",
    "dataloader_num_workers": "tunepilot's data loader is not configurable; unsupported",
    "overwrite_cache": "tunepilot keeps no tokenised cache; unsupported",
    "tokenized_path": "tunepilot keeps no tokenised cache; unsupported",
    "logging_steps": LOGGING,
    "plot_loss": "the loss curve is on the UI's jobs page and in TensorBoard (training.report_to = tensorboard)",
    "overwrite_output_dir": "`tunepilot train --overwrite` (the launch check refuses a used output folder otherwise)",
    "save_only_model": "tunepilot checkpoints always hold what resuming needs; unsupported",
    "ddp_timeout": RUN_ELSEWHERE,
    "deepspeed": RUN_ELSEWHERE,
    "ray_num_workers": RUN_ELSEWHERE,
    "ray_init_kwargs": RUN_ELSEWHERE,
    "resume_from_checkpoint": RESUMES,
    "flash_attn": "transformers picks the attention implementation for the model; unsupported",
    "enable_liger_kernel": "unsupported",
    "use_unsloth": "unsupported",
    "adapter_name_or_path": "training from an existing adapter is unsupported; start from the base (or a merged model: `tunepilot merge`)",
    "export_dir": "`tunepilot merge RUN` writes the merged model",
    "export_size": "unsupported",
    "export_device": "unsupported",
    "export_legacy_format": "unsupported",
    "export_hub_model_id": HUB,
    "push_to_hub": HUB,
    "hub_model_id": HUB,
    "default_system": "put a system message in the data rows; unsupported",
    "train_on_prompt": "tunepilot trains on the assistant turns only (train_on_prompt: false); unsupported",
    "mask_history": "unsupported: tunepilot trains on every assistant turn (mask_history: false)",
    "use_dora": "unsupported (plain LoRA)",
    "use_rslora": "unsupported (plain LoRA scaling alpha / r)",
    "loraplus_lr_ratio": "unsupported (one learning rate for all adapter weights)",
    "pissa_init": "unsupported (standard LoRA initialisation)",
    "additional_target": "unsupported; method.target_modules lists the modules that get adapters",
    "freeze_trainable_modules": "unsupported; method.freeze_trainable_layers trains the last N layers",
    "freeze_extra_modules": "unsupported; method.freeze_trainable_layers trains the last N layers",
    "max_grad_norm": "unsupported (Hugging Face's default clipping at 1.0 applies)",
    "per_device_eval_batch_size": "evaluation uses training.batch_size; unsupported",
    "eval_strategy": "training.eval_every_n_steps (evaluation every N steps)",
    "evaluation_strategy": "training.eval_every_n_steps (evaluation every N steps)",
    "eval_on_each_dataset": "unsupported; the validation loss is measured over the whole eval set",
    "streaming": "unsupported; datasets are read from local files",
    "buffer_size": "unsupported; datasets are read from local files",
    "interleave_probs": "unsupported; entries are concatenated (mix_strategy: concat)",
    "rope_scaling": "unsupported",
    "shift_attn": "unsupported",
    "upcast_layernorm": "unsupported",
    "image_max_pixels": MEDIA, "image_min_pixels": MEDIA, "video_max_pixels": MEDIA, "video_min_pixels": MEDIA,
    "video_fps": MEDIA, "video_maxlen": MEDIA, "freeze_vision_tower": MEDIA,
    "freeze_multi_modal_projector": MEDIA, "freeze_language_model": MEDIA, "media_dir": MEDIA,
    "ref_model": "the preference stages use the frozen base model as the reference; unsupported",
    "reward_model": "unsupported (no PPO)",
    "pref_ftx": "unsupported",
    "simpo_gamma": "unsupported (TRL's default margin)",
    "dpo_label_smoothing": "unsupported",
    "include_num_input_tokens_seen": LOGGING,
}


# ---------------------------------------------------------------- detection

def detect_score(data: dict) -> int:
    """How many LLaMA-Factory-only keys the mapping has (axolotl shares few names with it)."""
    score = len(SIGNATURE & set(data))
    if isinstance(data.get("dataset"), str):
        score += 1
    return score


# ---------------------------------------------------------------- import

def import_config(data: dict) -> tuple[TrainConfig, MappingReport]:
    imp = Importer(TITLE, data)
    handlers = {
        "stage": _stage, "do_train": _do_train, "finetuning_type": _finetuning_type, "lora_target": _lora_target,
        "freeze_trainable_layers": _freeze_layers, "dataset": _dataset, "dataset_dir": _dataset_dir,
        "eval_dataset": _eval_dataset, "val_size": _val_size, "mix_strategy": _mix_strategy, "packing": _packing,
        "neat_packing": _packing, "lr_scheduler_type": _scheduler, "optim": _optim, "bf16": _precision,
        "fp16": _precision, "pure_bf16": _precision, "quantization_bit": _quantization,
        "quantization_method": _quantization_detail, "quantization_type": _quantization_detail,
        "double_quantization": _quantization_detail, "disable_gradient_checkpointing": _checkpointing,
        "max_steps": _max_steps, "warmup_steps": _warmup_steps, "pref_beta": _pref_beta, "pref_loss": _pref_loss,
        "report_to": _report_to, "do_eval": _do_eval,
    }
    for key, value in data.items():
        if is_empty(value) and key not in ("dataset",):
            imp.empty(key)
        elif key in handlers:
            handlers[key](imp, key, value)
        elif key in _DIRECT and has_field(_DIRECT[key]):
            new = as_float(value) if key in _FLOATS else value
            imp.mapped(key, _DIRECT[key], value, new)
        elif key in _NEAREST:
            imp.unsupported(key, _NEAREST[key])
        else:
            imp.unsupported(key, "unsupported (not a LLaMA-Factory key this importer knows)")
    _peer_defaults(imp, data)
    return imp.finish()


def _stage(imp: Importer, key: str, value: Any) -> None:
    if value == "sft":
        if has_field("method.stage"):
            imp.mapped(key, "method.stage")
        else:
            imp.report.add(key, value, "mapped", why="tunepilot fine-tunes supervised (SFT) by default")
        return
    if value == "pt":
        if isinstance(imp.source.get("dataset"), str):
            imp.report.add(key, value, "changed", why="pre-training: the registry entry's prompt column (columns "
                           "{\"prompt\": \"text\"}) is read as text rows, and every token of them is trained on")
        else:
            imp.changed(key, "dataset.format", "text", "pre-training: tunepilot trains on every token of `text` rows")
        return
    if value in ("dpo", "kto") and has_field("method.stage") and value in (allowed_values("method.stage") or ()):
        imp.mapped(key, "method.stage")
        return
    nearest = {"rm": "unsupported: tunepilot trains no reward models; method.stage dpo learns from the same pairs directly",
               "ppo": "unsupported: no PPO; method.stage dpo or kto learn from preference data without a reward model"}
    imp.unsupported(key, nearest.get(value, f"unsupported stage {value!r}" + (
        "" if has_field("method.stage") else " (this build trains SFT only; method.stage is not in the schema)")))


def _do_train(imp: Importer, key: str, value: Any) -> None:
    if value is True:
        imp.report.add(key, value, "mapped", why="a tunepilot config always describes a training run")
    else:
        imp.unsupported(key, "a tunepilot config always trains; use `tunepilot eval run` to only evaluate")


def _finetuning_type(imp: Importer, key: str, value: Any) -> None:
    if value in ("lora", "full", "freeze"):
        if value == "lora" and imp.source.get("quantization_bit") == 4:
            imp.changed(key, "method.type", "qlora", "LoRA on a 4-bit base (quantization_bit: 4) is tunepilot's qlora")
        else:
            imp.mapped(key, "method.type")
    else:
        imp.unsupported(key, f"unsupported method {value!r}; the nearest is method.type = lora")


def _lora_target(imp: Importer, key: str, value: Any) -> None:
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else list(value)
    if names == ["all"]:
        imp.changed(key, "method.target_modules", "all-linear", "LLaMA-Factory's `all` is every linear layer, tunepilot's `all-linear`")
    else:
        imp.changed(key, "method.target_modules", names, "the comma-separated text becomes a list of module names")


def _freeze_layers(imp: Importer, key: str, value: Any) -> None:
    if isinstance(value, int) and value > 0:
        imp.mapped(key, "method.freeze_trainable_layers")
    else:
        imp.unsupported(key, "method.freeze_trainable_layers trains the last N layers; training the first layers "
                             "(a negative count) is unsupported")


def _names(value: Any) -> str:
    parts = value.split(",") if isinstance(value, str) else list(value or [])
    return ",".join(str(p).strip() for p in parts if str(p).strip())


def _dataset(imp: Importer, key: str, value: Any) -> None:
    if is_empty(value):
        imp.empty(key)
        return
    names = _names(value)
    why = "dataset names of dataset_info.json; tunepilot reads the registry in dataset.dataset_dir"
    if names != value:
        imp.changed(key, "dataset.path", names, why + " (spaces and list form normalised to a comma-separated text)")
    else:
        imp.mapped(key, "dataset.path", value, note=why)


def _dataset_dir(imp: Importer, key: str, value: Any) -> None:
    if str(value).startswith("REMOTE:") or value == "ONLINE":
        imp.unsupported(key, "a registry on the hub cannot be read offline; download its dataset_info.json and data "
                             "files and set dataset.dataset_dir to that folder")
    elif has_field("dataset.dataset_dir"):
        imp.mapped(key, "dataset.dataset_dir")
    else:
        imp.unsupported(key, "dataset.dataset_dir is not in this build's schema")


def _eval_dataset(imp: Importer, key: str, value: Any) -> None:
    names = _names(value)
    imp.mapped(key, "dataset.eval_path", value, names)


def _val_size(imp: Importer, key: str, value: Any) -> None:
    value = as_float(value)
    if isinstance(value, float) and 0 <= value < 1:
        imp.mapped(key, "dataset.val_split", value)
    else:
        imp.unsupported(key, "dataset.val_split takes a fraction in [0, 1); a row count is unsupported", value)


def _mix_strategy(imp: Importer, key: str, value: Any) -> None:
    if value == "concat":
        imp.report.add(key, value, "mapped", why="tunepilot concatenates the named datasets in order")
    else:
        imp.unsupported(key, "tunepilot concatenates the named datasets (mix_strategy: concat); interleaving is unsupported")


def _packing(imp: Importer, key: str, value: Any) -> None:
    if value is not True:
        if imp.get("training.packing") is None:
            imp.mapped(key, "training.packing", value, False)
        else:
            imp.report.add(key, value, "mapped", why="packing is already on from the other packing key")
        return
    if key == "neat_packing":
        imp.mapped(key, "training.packing", value, True)
    else:
        imp.changed(key, "training.packing", True, "tunepilot packs without attention across examples "
                    "(LLaMA-Factory's neat_packing); plain packing let examples see each other")


def _scheduler(imp: Importer, key: str, value: Any) -> None:
    if value in SCHEDULERS:
        imp.mapped(key, "optimizer.lr_scheduler")
    else:
        imp.unsupported(key, f"unsupported schedule {value!r}; choose one of {', '.join(SCHEDULERS)}")


def _optim(imp: Importer, key: str, value: Any) -> None:
    if value not in OPTIMIZERS:
        imp.unsupported(key, f"unsupported optimizer {value!r}; optimizer.type offers adamw, adamw_8bit, "
                             "paged_adamw_8bit, lion, lion_8bit, adafactor, sgd")
        return
    target, why = OPTIMIZERS[value]
    if why:
        imp.changed(key, "optimizer.type", target, why)
    else:  # the same optimizer, perhaps under another name
        imp.mapped(key, "optimizer.type", value, target)


def _precision(imp: Importer, key: str, value: Any) -> None:
    dtype = {"bf16": "bfloat16", "pure_bf16": "bfloat16", "fp16": "float16"}[key]
    if value is True:
        imp.changed(key, "model.dtype", dtype, f"mixed precision `{key}: true` -> model.dtype = {dtype}; tunepilot "
                    "chooses the matching training precision for the method")
    elif value is False:
        imp.report.add(key, value, "mapped", why=f"{key} off")
    else:
        imp.unsupported(key, "a true/false flag; use model.dtype")


def _quantization(imp: Importer, key: str, value: Any) -> None:
    if value == 4 and imp.source.get("finetuning_type", "lora") == "lora":
        imp.changed(key, "method.type", "qlora", "a 4-bit base under LoRA is tunepilot's qlora (bitsandbytes NF4, double quantization)")
    else:
        imp.unsupported(key, "only 4-bit QLoRA (method.type = qlora) quantizes the base; "
                             f"{value}-bit or quantized full training is unsupported")


def _quantization_detail(imp: Importer, key: str, value: Any) -> None:
    same = {"quantization_method": "bnb", "quantization_type": "nf4", "double_quantization": True}
    if value == same[key]:
        imp.report.add(key, value, "mapped", why="tunepilot's qlora uses bitsandbytes NF4 with double quantization")
    else:
        imp.unsupported(key, "tunepilot's qlora uses bitsandbytes NF4 with double quantization; other quantization is unsupported")


def _checkpointing(imp: Importer, key: str, value: Any) -> None:
    imp.changed(key, "training.gradient_checkpointing", not bool(value),
                "LLaMA-Factory's disable switch becomes tunepilot's enable switch (inverted)")


def _max_steps(imp: Importer, key: str, value: Any) -> None:
    if isinstance(value, int) and value <= 0:
        imp.report.add(key, value, "mapped", why="-1 or 0 means no step limit (epochs decide), as in tunepilot")
    else:
        imp.mapped(key, "training.max_steps")


def _warmup_steps(imp: Importer, key: str, value: Any) -> None:
    steps = imp.source.get("max_steps")
    if isinstance(value, int) and value == 0:
        imp.changed(key, "optimizer.warmup_ratio", 0.0, "no warmup steps is a warmup ratio of 0")
    elif isinstance(value, int) and isinstance(steps, int) and steps > 0:
        imp.changed(key, "optimizer.warmup_ratio", round(value / steps, 6),
                    f"{value} warmup steps of max_steps {steps} as a fraction")
    else:
        imp.unsupported(key, "optimizer.warmup_ratio (a fraction of all steps); the step count is unknown without max_steps")


def _pref_beta(imp: Importer, key: str, value: Any) -> None:
    if has_field("method.beta"):
        imp.mapped(key, "method.beta", value, as_float(value))
    else:
        imp.unsupported(key, "method.beta is not in this build's schema (preference training)")


def _pref_loss(imp: Importer, key: str, value: Any) -> None:
    if value == "orpo" and has_field("method.stage") and "orpo" in (allowed_values("method.stage") or ()):
        imp.changed(key, "method.stage", "orpo", "LLaMA-Factory runs ORPO as a DPO loss; tunepilot has it as its own stage")
    elif has_field("method.pref_loss") and value in (allowed_values("method.pref_loss") or ()):
        imp.mapped(key, "method.pref_loss")
    else:
        choices = ", ".join(allowed_values("method.pref_loss") or ()) if has_field("method.pref_loss") else "none in this build"
        imp.unsupported(key, f"unsupported preference loss {value!r}; method.pref_loss offers {choices}")


def _report_to(imp: Importer, key: str, value: Any) -> None:
    values = [value] if isinstance(value, str) else list(value)
    values = [v for v in values if v != "none"] or ["none"]
    allowed = allowed_values("training.report_to") if has_field("training.report_to") else None
    if allowed and len(values) == 1 and values[0] in allowed:
        imp.mapped(key, "training.report_to", value, values[0])
    else:
        imp.unsupported(key, f"training.report_to takes one of {', '.join(allowed)}" if allowed else "unsupported")


def _do_eval(imp: Importer, key: str, value: Any) -> None:
    imp.report.add(key, value, "mapped", why="tunepilot evaluates when dataset.eval_path or dataset.val_split is set")


def _peer_defaults(imp: Importer, data: dict) -> None:
    stage = data.get("stage", "sft")
    if data.get("finetuning_type", "lora") == "lora":
        rank = data.get("lora_rank") or 8
        if "lora_rank" not in data:
            imp.default("method.lora_r", 8, "LLaMA-Factory's default LoRA rank is 8")
        if "lora_alpha" not in data:
            imp.default("method.lora_alpha", rank * 2, "LLaMA-Factory's default alpha is 2 x the rank")
        if "lora_dropout" not in data:
            imp.default("method.lora_dropout", 0.0, "LLaMA-Factory's default LoRA dropout is 0")
    if not any(k in data for k in ("bf16", "fp16", "pure_bf16")):
        imp.default("model.dtype", "float32", "without bf16/fp16 the Hugging Face Trainer computes in fp32")
    if "disable_gradient_checkpointing" not in data:
        imp.default("training.gradient_checkpointing", True, "LLaMA-Factory turns gradient checkpointing on unless "
                    "disable_gradient_checkpointing is set")
    for key, target, value, why in (
        ("learning_rate", "optimizer.learning_rate", 5e-5, "Hugging Face's default learning rate"),
        ("per_device_train_batch_size", "training.batch_size", 8, "Hugging Face's default batch size per device"),
        ("lr_scheduler_type", "optimizer.lr_scheduler", "linear", "Hugging Face's default schedule"),
        ("cutoff_len", "dataset.max_seq_length", 2048, "LLaMA-Factory's default cutoff_len"),
        ("save_steps", "saving.save_every_n_steps", 500, "Hugging Face's default checkpoint interval"),
    ):
        if key not in data:
            imp.default(target, value, why)
    if "warmup_ratio" not in data and "warmup_steps" not in data:
        imp.default("optimizer.warmup_ratio", 0.0, "Hugging Face's default is no warmup")
    # dataset_dir left out: tunepilot looks in data/ too (beside the config, then in the current folder).
    if "save_total_limit" not in data:
        imp.report.notes.append("LLaMA-Factory keeps every checkpoint unless save_total_limit is set; tunepilot keeps "
                                "saving.save_total_limit of them (a number is required)")
    if stage == "sft" and "packing" not in data and "neat_packing" not in data:
        pass  # LLaMA-Factory packs by default only in pre-training (stage pt), as tunepilot's default (off) does for SFT
    if stage == "pt" and "packing" not in data and "neat_packing" not in data:
        imp.default("training.packing", True, "LLaMA-Factory packs by default in pre-training")


# ---------------------------------------------------------------- export

def export_config(cfg: TrainConfig, base=None) -> MappingReport:
    """A LLaMA-Factory training YAML for `cfg`; the report lists what does not carry over. Registry names and
    dataset_dir are written as they are; `base` (the config's folder) only helps find the registry to tell
    plain-text (stage pt) data from chats."""
    rep = MappingReport("tunepilot", TITLE)
    out: dict[str, Any] = {}
    data = cfg.to_dict()

    def put(key: str, value: Any, source: str, why: str = "") -> None:
        out[key] = value
        rep.add(source, _get(data, source), "changed" if why else "mapped", key, value, why)

    m, meth, ds, opt, tr, sv = cfg.model, cfg.method, cfg.dataset, cfg.optimizer, cfg.training, cfg.saving
    put("model_name_or_path", m.base_model, "model.base_model")
    put("trust_remote_code", m.trust_remote_code, "model.trust_remote_code")
    stage = getattr(meth, "stage", "sft")
    if stage == "orpo":
        put("stage", "dpo", "method.stage", "LLaMA-Factory runs ORPO as stage dpo with pref_loss: orpo")
        out["pref_loss"] = "orpo"
    else:
        out["stage"] = stage
        if has_field("method.stage"):
            rep.add("method.stage", stage, "mapped", "stage", stage)
    if stage == "sft" and (cfg.dataset.format == "text" or _names_are_text(cfg, base)):
        out["stage"] = "pt"
        rep.notes.append("the data is plain text, which LLaMA-Factory trains with stage: pt")
    out["do_train"] = True
    if meth.type == "qlora":
        put("finetuning_type", "lora", "method.type", "qlora is LoRA with quantization_bit: 4 (bitsandbytes)")
        out.update(quantization_bit=4, quantization_method="bnb")
    else:
        put("finetuning_type", meth.type, "method.type")
    if meth.type in ("lora", "qlora"):
        put("lora_rank", meth.lora_r, "method.lora_r")
        put("lora_alpha", meth.lora_alpha, "method.lora_alpha")
        put("lora_dropout", meth.lora_dropout, "method.lora_dropout")
        target = "all" if meth.target_modules == "all-linear" else ",".join(meth.target_modules)
        put("lora_target", target, "method.target_modules", "written as LLaMA-Factory's comma-separated text")
    if meth.type == "freeze":
        put("freeze_trainable_layers", meth.freeze_trainable_layers, "method.freeze_trainable_layers")
    if stage in ("dpo", "orpo", "kto"):
        put("pref_beta", meth.beta, "method.beta")
        if stage == "dpo":
            put("pref_loss", meth.pref_loss, "method.pref_loss")
    _export_dataset(cfg, out, rep, put)
    put("cutoff_len", ds.max_seq_length, "dataset.max_seq_length")
    if ds.val_split:
        put("val_size", ds.val_split, "dataset.val_split")
    if tr.packing:
        put("neat_packing", True, "training.packing", "tunepilot's packing keeps examples apart, as neat_packing does")
    else:  # written, since LLaMA-Factory packs pre-training data unless told not to
        put("packing", False, "training.packing")
    put("output_dir", sv.output_dir or "saves/tunepilot", "saving.output_dir",
        "" if sv.output_dir else "tunepilot's default is a folder under $TUNEPILOT_HOME/runs; LLaMA-Factory needs one")
    put("save_steps", sv.save_every_n_steps, "saving.save_every_n_steps")
    put("save_total_limit", sv.save_total_limit, "saving.save_total_limit")
    put("per_device_train_batch_size", tr.batch_size, "training.batch_size")
    put("gradient_accumulation_steps", tr.gradient_accumulation_steps, "training.gradient_accumulation_steps")
    put("learning_rate", opt.learning_rate, "optimizer.learning_rate")
    put("num_train_epochs", float(tr.epochs), "training.epochs")
    if tr.max_steps:
        put("max_steps", tr.max_steps, "training.max_steps")
    put("lr_scheduler_type", opt.lr_scheduler, "optimizer.lr_scheduler")
    put("warmup_ratio", opt.warmup_ratio, "optimizer.warmup_ratio")
    put("weight_decay", opt.weight_decay, "optimizer.weight_decay")
    put("optim", OPTIMIZER_NAMES[opt.type], "optimizer.type", "" if OPTIMIZER_NAMES[opt.type] == opt.type else
        f"Hugging Face's name for {opt.type}")
    _export_dtype(m.dtype, out, rep)
    put("disable_gradient_checkpointing", not tr.gradient_checkpointing, "training.gradient_checkpointing",
        "tunepilot's enable switch becomes LLaMA-Factory's disable switch (inverted)")
    put("seed", tr.seed, "training.seed")
    if getattr(tr, "eval_every_n_steps", None):
        put("eval_steps", tr.eval_every_n_steps, "training.eval_every_n_steps")
        out["eval_strategy"] = "steps"
    if getattr(tr, "report_to", "none") != "none":
        put("report_to", tr.report_to, "training.report_to")
    _export_leftovers(cfg, data, rep)
    rep.notes.append("LLaMA-Factory needs `template` for chat data: add the one for your model (e.g. qwen3, llama3, gemma)")
    rep.data = out
    return rep


def _names_are_text(cfg: TrainConfig, base) -> bool:
    """Whether dataset.path names registry entries that are all plain text (columns mapping only `prompt`)."""
    from trainer.data.dataset_info import DataError, looks_like_names, resolve

    if not looks_like_names(cfg.dataset.path):
        return False
    try:
        entries = resolve(cfg.dataset.path, cfg.dataset.dataset_dir, base)
    except DataError:
        return False
    return all(e.formatting == "alpaca" and "prompt" in e.columns and "response" not in e.columns for e in entries)


def _get(data: dict, dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    return data.get(section, {}).get(key)


def _export_dataset(cfg: TrainConfig, out: dict, rep: MappingReport, put) -> None:
    """Registry names stay names; a data file gets an entry of a new dataset_info.json (in `rep.files`)."""
    from trainer.data.dataset_info import looks_like_names

    ds = cfg.dataset
    registry: dict[str, dict] = {}
    for source, key in (("dataset.path", "dataset"), ("dataset.eval_path", "eval_dataset")):
        path = getattr(ds, source.split(".")[1])
        if not path:
            if source == "dataset.path":
                rep.notes.append("dataset.path is empty; set `dataset` to names of your dataset_info.json")
            continue
        if looks_like_names(path):
            put(key, path, source)
            continue
        name = _entry_name(path)
        if name in registry:
            name = f"{name}_eval"
        registry[name] = registry_entry(path, ds.format)
        put(key, name, source, f"LLaMA-Factory reads datasets by name: the entry {name!r} of the dataset_info.json "
            "written beside the exported file points at the file")
    if registry:
        rep.files["dataset_info.json"] = registry
        out["dataset_dir"] = "."  # the CLI sets the folder it writes dataset_info.json into
        rep.notes.append("dataset_dir must be the folder that holds the written dataset_info.json")
    elif getattr(ds, "dataset_dir", None):
        put("dataset_dir", ds.dataset_dir, "dataset.dataset_dir")
    if ds.format != "auto":
        rep.add("dataset.format", ds.format, "mapped", why="the entry's formatting/columns in dataset_info.json say the format")


def _entry_name(path: str) -> str:
    import re
    from pathlib import Path

    return re.sub(r"[^\w.-]+", "_", Path(path).stem) or "train"


def registry_entry(path: str, fmt: str) -> dict:
    """A dataset_info.json entry that makes LLaMA-Factory read a tunepilot data file as tunepilot does."""
    from pathlib import Path

    entry: dict[str, Any] = {"file_name": str(Path(path).expanduser().resolve())}
    kind = fmt
    if kind == "auto":
        from trainer.data.formats import DataError, detect_format, read_rows

        try:
            kind = detect_format(read_rows(path)[0])
        except (DataError, OSError, ValueError):
            kind = "auto"
    if kind == "chat":
        entry.update(formatting="sharegpt", columns={"messages": "messages"},
                     tags={"role_tag": "role", "content_tag": "content", "user_tag": "user",
                           "assistant_tag": "assistant", "system_tag": "system"})
    elif kind == "sharegpt":
        entry.update(formatting="sharegpt", columns={"messages": "conversations", "system": "system"})
    elif kind == "text":
        entry["columns"] = {"prompt": "text"}
    elif kind == "prompt_completion":
        entry["columns"] = {"prompt": "prompt", "response": "completion"}
    else:
        entry["columns"] = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                            "history": "history"}
    return entry


def _json(data: dict) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)


def _export_dtype(dtype: str, out: dict, rep: MappingReport) -> None:
    if dtype == "bfloat16":
        out["bf16"] = True
        rep.add("model.dtype", dtype, "changed", "bf16", True, "bfloat16 weights -> bf16 mixed precision")
    elif dtype == "float16":
        out["fp16"] = True
        rep.add("model.dtype", dtype, "changed", "fp16", True, "float16 weights -> fp16 mixed precision")
    elif dtype == "float32":
        rep.add("model.dtype", dtype, "mapped", why="fp32: neither bf16 nor fp16 is set")
    else:
        out["bf16"] = True
        rep.add("model.dtype", dtype, "changed", "bf16", True,
                "`auto` depends on the machine; bf16 is written (set fp16: true instead on GPUs without bfloat16)")


def _export_leftovers(cfg: TrainConfig, data: dict, rep: MappingReport) -> None:
    """Every set tunepilot key that has no LLaMA-Factory key is named."""
    done = {e.key for e in rep.entries}
    nearest = {
        "training.device": "LLaMA-Factory picks the device (CUDA_VISIBLE_DEVICES selects GPUs)",
        "hardware.gpu": "used only for tunepilot's memory estimate", "hardware.device_memory_gb": "used only for tunepilot's memory estimate",
        "sampling.every_n_steps": "unsupported (no sample generations during training)",
        "sampling.prompts": "unsupported (no sample generations during training)",
        "saving.suffix": "part of tunepilot's model id; unsupported", "saving.merge_after_training":
        "run `llamafactory-cli export` with adapter_name_or_path after training",
    }
    defaults = TrainConfig().to_dict()
    for section, keys in data.items():
        for key, value in keys.items():
            dotted = f"{section}.{key}"
            if dotted in done:
                continue
            if value == defaults.get(section, {}).get(key):
                continue  # an untouched default says nothing the peer needs
            rep.add(dotted, value, "not_supported", why=nearest.get(dotted, "unsupported in LLaMA-Factory"))
