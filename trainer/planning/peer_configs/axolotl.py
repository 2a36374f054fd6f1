"""axolotl training YAMLs (`axolotl train file.yml`) <-> tunepilot configs.

An axolotl file is one flat mapping; datasets are a list of `{path, type, ...}` items whose `type`
names the row layout (alpaca, chat_template with its field mappings, completion, ...). Each key is
mapped by `import_config`; `export_config` writes the reverse, with tunepilot's row formats as
axolotl dataset types.

axolotl defaults the importer writes when the file relies on them (they differ from tunepilot's):
one epoch, micro batch 1, sequence length 512, full fine-tuning when no `adapter` is given, and fp32
unless bf16/fp16 is set.
"""

from __future__ import annotations

from pathlib import Path
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

NAME = "axolotl"
TITLE = "axolotl"

SIGNATURE = {"base_model", "datasets", "adapter", "micro_batch_size", "sequence_len", "num_epochs", "lora_r",
             "lora_target_linear", "lora_target_modules", "val_set_size", "sample_packing", "load_in_4bit",
             "load_in_8bit", "dataset_prepared_path", "wandb_project", "lr_scheduler", "rl", "special_tokens",
             "pad_to_sequence_len", "eval_sample_packing", "saves_per_epoch", "evals_per_epoch", "tokenizer_type"}

_DIRECT = {
    "base_model": "model.base_model",
    "trust_remote_code": "model.trust_remote_code",
    "lora_r": "method.lora_r",
    "lora_alpha": "method.lora_alpha",
    "lora_dropout": "method.lora_dropout",
    "sequence_len": "dataset.max_seq_length",
    "micro_batch_size": "training.batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps",
    "learning_rate": "optimizer.learning_rate",
    "num_epochs": "training.epochs",
    "warmup_ratio": "optimizer.warmup_ratio",
    "weight_decay": "optimizer.weight_decay",
    "seed": "training.seed",
    "output_dir": "saving.output_dir",
    "save_total_limit": "saving.save_total_limit",
    "gradient_checkpointing": "training.gradient_checkpointing",
    "eval_steps": "training.eval_every_n_steps",
}
_FLOATS = {"learning_rate", "warmup_ratio", "weight_decay", "lora_dropout", "num_epochs"}

_TOKENIZER_CLASSES = "tunepilot loads the model and tokenizer with transformers' Auto classes, which read the architecture from the model folder"
_NEAREST = {
    "model_type": _TOKENIZER_CLASSES, "tokenizer_type": _TOKENIZER_CLASSES, "base_model_config": _TOKENIZER_CLASSES,
    "tokenizer_config": _TOKENIZER_CLASSES, "tokenizer_use_fast": _TOKENIZER_CLASSES, "is_llama_derived_model": _TOKENIZER_CLASSES,
    "chat_template": TEMPLATE, "chat_template_jinja": TEMPLATE, "default_system_message": "put a system message in the data rows",
    "eot_tokens": TEMPLATE, "special_tokens": "unsupported; the tokenizer's own special tokens are used",
    "tokens": "unsupported; no tokens are added to the vocabulary",
    "dataset_prepared_path": "tunepilot keeps no tokenised cache; unsupported",
    "dataset_processes": "tunepilot tokenises in the training process; unsupported",
    "dataset_num_proc": "tunepilot tokenises in the training process; unsupported",
    "shuffle_merged_datasets": "unsupported", "push_dataset_to_hub": HUB, "hub_model_id": HUB, "hub_strategy": HUB,
    "lora_model_dir": "training from an existing adapter is unsupported; start from the base (or a merged model: `tunepilot merge`)",
    "lora_fan_in_fan_out": "unsupported (PEFT reads the layer layout from the model)",
    "lora_modules_to_save": "unsupported; only the adapter weights are trained",
    "peft_use_dora": "unsupported (plain LoRA)", "peft_use_rslora": "unsupported (plain LoRA scaling alpha / r)",
    "loraplus_lr_ratio": "unsupported (one learning rate for all adapter weights)",
    "unfrozen_parameters": "method.type = freeze with method.freeze_trainable_layers (the last N layers); parameter patterns are unsupported",
    "pad_to_sequence_len": "unsupported; batches are padded to their longest example (or packed: training.packing)",
    "eval_sample_packing": "evaluation batches follow training.packing; unsupported",
    "sample_packing_eff_est": "unsupported", "total_num_tokens": "unsupported",
    "train_on_inputs": "tunepilot trains on the assistant turns only (train_on_inputs: false)",
    "group_by_length": "unsupported", "max_grad_norm": "unsupported (Hugging Face's default clipping at 1.0 applies)",
    "tf32": "unsupported; PyTorch's matmul precision default applies", "logging_steps": LOGGING,
    "resume_from_checkpoint": RESUMES, "auto_resume_from_checkpoints": RESUMES,
    "flash_attention": "transformers picks the attention implementation for the model; unsupported",
    "attn_implementation": "transformers picks the attention implementation for the model; unsupported",
    "sdp_attention": "transformers picks the attention implementation for the model; unsupported",
    "xformers_attention": "transformers picks the attention implementation for the model; unsupported",
    "flash_attn_cross_entropy": "unsupported", "flash_attn_rms_norm": "unsupported", "s2_attention": "unsupported",
    "gradient_checkpointing_kwargs": "tunepilot sets checkpointing's options itself; only on/off (training.gradient_checkpointing)",
    "deepspeed": RUN_ELSEWHERE, "fsdp": RUN_ELSEWHERE, "fsdp_config": RUN_ELSEWHERE, "fsdp_version": RUN_ELSEWHERE,
    "ddp_find_unused_parameters": RUN_ELSEWHERE, "ddp_timeout": RUN_ELSEWHERE, "context_parallel_size": RUN_ELSEWHERE,
    "evals_per_epoch": "training.eval_every_n_steps (evaluation every N steps)",
    "eval_batch_size": "evaluation uses training.batch_size; unsupported",
    "eval_max_new_tokens": "unsupported", "eval_table_size": "unsupported", "do_bench_eval": "unsupported",
    "saves_per_epoch": "saving.save_every_n_steps (a step count; the steps per epoch depend on the data)",
    "early_stopping_patience": "unsupported", "strict": "tunepilot's config reader is always strict about unknown keys",
    "plugins": "unsupported", "liger_rope": "unsupported", "liger_rms_norm": "unsupported", "liger_glu_activation": "unsupported",
    "liger_layer_norm": "unsupported", "liger_fused_linear_cross_entropy": "unsupported", "cut_cross_entropy": "unsupported",
    "torch_compile": "unsupported", "debug": "unsupported", "local_rank": RUN_ELSEWHERE,
    "lr_scheduler_kwargs": "unsupported", "optim_args": "unsupported", "cosine_min_lr_ratio": "unsupported",
    "lr_quadratic_warmup": "unsupported", "embedding_lr": "unsupported", "embedding_lr_scale": "unsupported",
    "adam_beta1": "unsupported (PyTorch's AdamW betas)", "adam_beta2": "unsupported (PyTorch's AdamW betas)",
    "adam_epsilon": "unsupported (PyTorch's AdamW epsilon)", "neftune_noise_alpha": "unsupported",
    "processor_type": MEDIA, "image_size": MEDIA, "image_resize_algorithm": MEDIA, "skip_prepare_dataset": "unsupported",
    "remove_unused_columns": "unsupported", "save_safetensors": "tunepilot always saves safetensors",
    "save_first_step": "unsupported", "save_strategy": "saving.save_every_n_steps (checkpoints every N steps)",
    "gptq": "unsupported; QLoRA (method.type = qlora) quantizes with bitsandbytes",
    "orpo_alpha": "method.beta weighs the odds-ratio term for method.stage = orpo",
    "simpo_gamma": "unsupported (TRL's default margin)", "dpo_label_smoothing": "unsupported",
    "trl": "unsupported (GRPO and other TRL trainer settings)", "rl_adapter_ref_model": "unsupported",
    "batch_size": "training.batch_size x training.gradient_accumulation_steps (the total is derived, not set)",
    "lora_mlp_kernel": "unsupported (custom LoRA kernels)", "lora_qkv_kernel": "unsupported (custom LoRA kernels)",
    "lora_o_kernel": "unsupported (custom LoRA kernels)", "use_kernels": "unsupported", "fused_attn_kernel": "unsupported",
    "lora_target_parameters": "method.target_modules (module names); parameter targets are unsupported",
    "loss_watchdog_threshold": "unsupported", "loss_watchdog_patience": "unsupported",
    "activation_offloading": "training.gradient_checkpointing is the memory saver offered; offloading is unsupported",
    "low_cpu_mem_usage": "unsupported (transformers' loading defaults)",
    "tokenizer_use_mistral_common": _TOKENIZER_CLASSES, "tokenizer_legacy": _TOKENIZER_CLASSES,
    "revision_of_model": "unsupported; point model.base_model at a local folder of the revision you want",
    "hf_use_auth_token": "unsupported (offline: models come from local folders)",
    "dataset_exact_deduplication": "`tunepilot data check` lists duplicate examples; removing them is up to you",
    "use_ray": RUN_ELSEWHERE, "ray_num_workers": RUN_ELSEWHERE, "dp_shard_size": RUN_ELSEWHERE,
    "expert_parallel_size": RUN_ELSEWHERE, "use_wandb": "training.report_to = wandb", "use_swanlab": "unsupported",
    "kto_desirable_weight": "unsupported (TRL's default weights)", "kto_undesirable_weight": "unsupported (TRL's default weights)",
    "relora": "unsupported", "curriculum_sampling": "unsupported (data order is shuffled with training.seed)",
    "sample_packing_sequentially": "unsupported", "resize_token_embeddings_to_32x": "unsupported",
    "torch_compile_mode": "unsupported", "bnb_config_kwargs": "unsupported; qlora uses bitsandbytes NF4 with double quantization",
    "model_config": "unsupported", "model_quantization_config": "unsupported; QLoRA (method.type = qlora) quantizes with bitsandbytes",
    "model_quantization_config_kwargs": "unsupported; QLoRA (method.type = qlora) quantizes with bitsandbytes",
}


# ---------------------------------------------------------------- detection

def detect_score(data: dict) -> int:
    score = len(SIGNATURE & set(data))
    if isinstance(data.get("datasets"), list):
        score += 1
    return score


# ---------------------------------------------------------------- import

def import_config(data: dict) -> tuple[TrainConfig, MappingReport]:
    imp = Importer(TITLE, data)
    handlers = {
        "adapter": _adapter, "load_in_4bit": _load_in, "load_in_8bit": _load_in, "lora_target_linear": _target_linear,
        "lora_target_modules": _target_modules, "datasets": _datasets, "test_datasets": _datasets,
        "val_set_size": _val_set_size, "sample_packing": _sample_packing, "optimizer": _optimizer,
        "lr_scheduler": _scheduler, "bf16": _precision, "fp16": _precision, "bfloat16": _precision,
        "float16": _precision, "warmup_steps": _warmup_steps, "max_steps": _max_steps, "save_steps": _save_steps,
        "rl": _rl, "rl_beta": _beta, "dpo_beta": _beta, "wandb_project": _tracker, "wandb_entity": _tracker,
        "wandb_name": _tracker, "wandb_watch": _tracker, "wandb_log_model": _tracker, "wandb_mode": _tracker,
        "wandb_run_id": _tracker, "mlflow_tracking_uri": _tracker, "mlflow_experiment_name": _tracker,
        "use_tensorboard": _tracker, "train_on_inputs": _train_on_inputs,
    }
    for key, value in data.items():
        if is_empty(value):
            imp.empty(key)
        elif key in handlers:
            handlers[key](imp, key, value)
        elif key in _DIRECT and has_field(_DIRECT[key]):
            imp.mapped(key, _DIRECT[key], value, as_float(value) if key in _FLOATS else value)
        elif key in _NEAREST:
            imp.unsupported(key, _NEAREST[key])
        else:
            imp.unsupported(key, "unsupported (not an axolotl key this importer knows)")
    _peer_defaults(imp, data)
    return imp.finish()


def _adapter(imp: Importer, key: str, value: Any) -> None:
    if value == "lora" and imp.source.get("load_in_4bit") is True:
        imp.changed(key, "method.type", "qlora", "LoRA on a 4-bit base (load_in_4bit: true) is tunepilot's qlora")
    elif value in ("lora", "qlora"):
        imp.mapped(key, "method.type")
    else:
        imp.unsupported(key, f"unsupported adapter {value!r}; the nearest is method.type = lora")


def _load_in(imp: Importer, key: str, value: Any) -> None:
    if value is False:
        imp.report.add(key, value, "mapped", why="the base is not quantized")
    elif key == "load_in_4bit":
        if imp.source.get("adapter") in ("lora", "qlora"):
            imp.report.add(key, value, "mapped", target="method.type", new_value="qlora",
                           why="a 4-bit base under LoRA is tunepilot's qlora (bitsandbytes NF4)")
        else:
            imp.unsupported(key, "a 4-bit base is only trained through LoRA adapters (method.type = qlora)")
    else:
        imp.unsupported(key, "8-bit base weights are unsupported; the nearest is 4-bit QLoRA (method.type = qlora), "
                             "or LoRA on a 16-bit base (method.type = lora)")


def _target_linear(imp: Importer, key: str, value: Any) -> None:
    if value is True:
        imp.changed(key, "method.target_modules", "all-linear", "every linear layer is tunepilot's `all-linear`")
    else:
        imp.report.add(key, value, "mapped", why="the modules come from lora_target_modules")


def _target_modules(imp: Importer, key: str, value: Any) -> None:
    if imp.source.get("lora_target_linear") is True:
        imp.unsupported(key, "lora_target_linear: true already targets every linear layer (method.target_modules = all-linear)")
        return
    names = [value] if isinstance(value, str) else list(value)
    imp.mapped(key, "method.target_modules", value, names)


# -- datasets

_CHAT_FIELDS = {("messages", "role", "content"): "chat", ("conversations", "from", "value"): "sharegpt"}


def _dataset_format(item: dict) -> tuple[str | None, str]:
    """(tunepilot dataset.format for an axolotl dataset item, why) or (None, nearest) when it has none."""
    kind = item.get("type")
    if kind is None:
        return "auto", "no type given: tunepilot detects the row format from the fields"
    if kind == "alpaca":
        return "alpaca", ""
    if kind == "sharegpt":
        return "sharegpt", ""
    if kind == "completion":
        field = item.get("field", "text")
        if field == "text":
            return "text", "axolotl's completion rows are tunepilot's text rows (every token trained on)"
        return None, f"completion rows read from field {field!r}; rename it to `text` (tunepilot reads text rows)"
    if kind == "chat_template":
        mapping = dict(item.get("message_property_mappings") or {})
        role = mapping.get("role", item.get("message_field_role", "role"))
        content = mapping.get("content", item.get("message_field_content", "content"))
        fields = (item.get("field_messages", "messages"), role, content)
        if fields in _CHAT_FIELDS:
            fmt = _CHAT_FIELDS[fields]
            return fmt, (f"chat_template rows with {fields[0]}/{role}/{content} are tunepilot's {fmt} rows, "
                         "formatted with the model's own chat template")
        return None, (f"chat rows under {fields[0]!r} with {role!r}/{content!r}; describe the file in a dataset_info.json "
                      "entry (columns.messages + tags.role_tag/content_tag) and name it in dataset.path")
    if isinstance(kind, str) and "." in kind:
        return "auto", f"the {kind!r} prompt strategy: tunepilot finds the row layout from the fields; check the rows with `tunepilot data check`"
    return None, f"dataset type {kind!r} is unsupported; tunepilot reads chat, alpaca, sharegpt, prompt/completion and text rows"


def _datasets(imp: Importer, key: str, value: Any) -> None:
    target = "dataset.eval_path" if key == "test_datasets" else "dataset.path"
    if not isinstance(value, list):
        imp.unsupported(key, "datasets must be a list of {path, type} items")
        return
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or not item.get("path"):
            imp.unsupported(where, "a dataset item needs a path", item)
            continue
        if i > 0:
            imp.unsupported(where, "tunepilot trains on one data file (or several dataset_info.json entries named "
                                   "in dataset.path); combine the files, or list them in a registry", item)
            continue
        _dataset_item(imp, where, item, target)


def _dataset_item(imp: Importer, where: str, item: dict, target: str) -> None:
    path = str(item["path"])
    fmt, why = _dataset_format(item)
    local = Path(path).expanduser().exists() or Path(path).suffix.lower() in (".json", ".jsonl", ".csv", ".txt")
    if local:
        imp.mapped(f"{where}.path", target, path)
    else:
        imp.changed(f"{where}.path", target, path, "looks like a hub dataset; tunepilot reads local files: download it "
                    "(e.g. `huggingface-cli download --repo-type dataset ...`) and set the path to the file", value=path)
    if "type" in item:
        if fmt is None:
            imp.unsupported(f"{where}.type", why, item.get("type"))
        elif target == "dataset.path":
            if why:
                imp.changed(f"{where}.type", "dataset.format", fmt, why, value=item.get("type"))
            else:
                imp.mapped(f"{where}.type", "dataset.format", item.get("type"), fmt)
        else:
            imp.report.add(f"{where}.type", item.get("type"), "mapped", why="the eval file is read like the training file")
    if "ds_type" in item:
        imp.report.add(f"{where}.ds_type", item["ds_type"], "mapped", why="tunepilot reads the file type from its suffix")
    if "split" in item:
        if item["split"] == "train":
            imp.report.add(f"{where}.split", "train", "mapped", why="a local file is read whole")
        else:
            imp.unsupported(f"{where}.split", "a local file is read whole; save the split you want as its own file", item["split"])
    if "data_files" in item:
        imp.unsupported(f"{where}.data_files", "point the path at the one data file instead", item["data_files"])
    understood = _FIELD_KEYS.get(fmt or "", set())
    for sub, sub_value in item.items():
        if sub in ("path", "type", "ds_type", "split", "data_files"):
            continue
        if sub in understood:
            imp.report.add(f"{where}.{sub}", sub_value, "mapped", why=f"matches tunepilot's {fmt} rows")
        elif is_empty(sub_value):
            imp.report.add(f"{where}.{sub}", sub_value, "empty", why="no value given: the peer's default applies")
        elif sub.startswith(("field", "message_")) or sub == "roles":
            imp.unsupported(f"{where}.{sub}", "tunepilot reads rows by their standard field names (messages/role/content, "
                                              "conversations/from/value, instruction/output, prompt/chosen/rejected); rename "
                                              "the fields in the file, or describe it in a dataset_info.json entry", sub_value)
        else:
            imp.unsupported(f"{where}.{sub}", "unsupported dataset option", sub_value)


_FIELD_KEYS = {"chat": {"field_messages", "message_property_mappings", "message_field_role", "message_field_content"},
               "sharegpt": {"field_messages", "message_property_mappings", "message_field_role", "message_field_content"},
               "text": {"field"}}


def _val_set_size(imp: Importer, key: str, value: Any) -> None:
    value = as_float(value)
    if isinstance(value, (int, float)) and 0 <= value < 1:
        imp.mapped(key, "dataset.val_split", value, float(value))
    else:
        imp.unsupported(key, "dataset.val_split takes a fraction in [0, 1); a row count is unsupported", value)


def _sample_packing(imp: Importer, key: str, value: Any) -> None:
    why = "tunepilot packs examples without attention across them, like axolotl's multipack" if value else ""
    if why:
        imp.changed(key, "training.packing", True, why)
    else:
        imp.mapped(key, "training.packing", value, False)


def _optimizer(imp: Importer, key: str, value: Any) -> None:
    if value not in OPTIMIZERS:
        imp.unsupported(key, f"unsupported optimizer {value!r}; optimizer.type offers adamw, adamw_8bit, "
                             "paged_adamw_8bit, lion, lion_8bit, adafactor, sgd")
        return
    target, why = OPTIMIZERS[value]
    if why:
        imp.changed(key, "optimizer.type", target, why)
    else:  # the same optimizer, perhaps under another name
        imp.mapped(key, "optimizer.type", value, target)


def _scheduler(imp: Importer, key: str, value: Any) -> None:
    if value in SCHEDULERS:
        imp.mapped(key, "optimizer.lr_scheduler")
    else:
        imp.unsupported(key, f"unsupported schedule {value!r}; choose one of {', '.join(SCHEDULERS)}")


def _precision(imp: Importer, key: str, value: Any) -> None:
    dtype = "float16" if key in ("fp16", "float16") else "bfloat16"
    if value == "auto":
        imp.changed(key, "model.dtype", "auto", "axolotl's `auto` uses bf16 where the GPU supports it; tunepilot's "
                    "`auto` picks bfloat16 where the hardware runs it fast, else float32")
    elif value is True:
        imp.changed(key, "model.dtype", dtype, f"`{key}: true` -> model.dtype = {dtype}; tunepilot chooses the matching "
                    "training precision for the method")
    elif value is False:
        imp.report.add(key, value, "mapped", why=f"{key} off")
    else:
        imp.unsupported(key, "true, false or auto; use model.dtype")


def _warmup_steps(imp: Importer, key: str, value: Any) -> None:
    steps = imp.source.get("max_steps")
    if value == 0:
        imp.changed(key, "optimizer.warmup_ratio", 0.0, "no warmup steps is a warmup ratio of 0")
    elif isinstance(value, int) and isinstance(steps, int) and steps > 0:
        imp.changed(key, "optimizer.warmup_ratio", round(value / steps, 6), f"{value} warmup steps of max_steps {steps} as a fraction")
    else:
        imp.unsupported(key, "optimizer.warmup_ratio (a fraction of all steps); the step count is unknown without max_steps")


def _max_steps(imp: Importer, key: str, value: Any) -> None:
    if isinstance(value, int) and value <= 0:
        imp.report.add(key, value, "mapped", why="no step limit (epochs decide), as in tunepilot")
    else:
        imp.mapped(key, "training.max_steps")


def _save_steps(imp: Importer, key: str, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        imp.mapped(key, "saving.save_every_n_steps")
    else:
        imp.unsupported(key, "saving.save_every_n_steps takes a whole number of steps; a fraction of the run is unsupported")


def _rl(imp: Importer, key: str, value: Any) -> None:
    stages = allowed_values("method.stage") if has_field("method.stage") else ()
    if value in ("dpo", "orpo", "kto") and value in stages:
        imp.mapped(key, "method.stage")
    elif value in ("ipo", "simpo") and "dpo" in stages and has_field("method.pref_loss") and value in (allowed_values("method.pref_loss") or ()):
        imp.changed(key, "method.stage", "dpo", f"{value} is a DPO loss in tunepilot (method.pref_loss = {value})")
        imp.set("method.pref_loss", value)
    else:
        imp.unsupported(key, f"unsupported RL trainer {value!r}" + ("; method.stage offers " + ", ".join(stages) if stages else
                                                                      " (method.stage is not in this build's schema)"))


def _beta(imp: Importer, key: str, value: Any) -> None:
    if has_field("method.beta"):
        imp.mapped(key, "method.beta", value, as_float(value))
    else:
        imp.unsupported(key, "method.beta is not in this build's schema (preference training)")


def _tracker(imp: Importer, key: str, value: Any) -> None:
    allowed = allowed_values("training.report_to") if has_field("training.report_to") else ()
    if key == "wandb_project" and "wandb" in allowed:
        imp.changed(key, "training.report_to", "wandb", "a W&B project turns on W&B logging")
        if has_field("training.tracking_project"):
            imp.set("training.tracking_project", value)
    elif key == "wandb_entity" and has_field("training.tracking_entity"):
        imp.mapped(key, "training.tracking_entity")
    elif key == "wandb_name" and has_field("training.tracking_run_name"):
        imp.mapped(key, "training.tracking_run_name")
    elif key == "mlflow_experiment_name" and "mlflow" in allowed:
        imp.changed(key, "training.report_to", "mlflow", "an MLflow experiment turns on MLflow logging (a file store in the output folder)")
        if has_field("training.tracking_project"):
            imp.set("training.tracking_project", value)
    elif key == "use_tensorboard" and value is True and "tensorboard" in allowed:
        imp.changed(key, "training.report_to", "tensorboard", "TensorBoard event files in the output folder")
    else:
        imp.unsupported(key, "training.report_to (none, tensorboard, mlflow, wandb)" if allowed else "unsupported")


def _train_on_inputs(imp: Importer, key: str, value: Any) -> None:
    if value is False:
        imp.report.add(key, value, "mapped", why="tunepilot trains on the assistant turns only")
    else:
        imp.unsupported(key, "tunepilot trains on the assistant turns only; training on the prompt is unsupported")


def _peer_defaults(imp: Importer, data: dict) -> None:
    if "adapter" not in data or is_empty(data.get("adapter")):
        imp.default("method.type", "full", "axolotl trains every weight when no adapter is given")
    for key, target, value, why in (
        ("num_epochs", "training.epochs", 1, "axolotl's default is one epoch"),
        ("micro_batch_size", "training.batch_size", 1, "axolotl's default micro batch is 1"),
        ("sequence_len", "dataset.max_seq_length", 512, "axolotl's default sequence_len is 512"),
    ):
        if key not in data:
            imp.default(target, value, why)
    if not any(k in data and not is_empty(data[k]) for k in ("bf16", "fp16", "bfloat16", "float16")):
        imp.default("model.dtype", "float32", "without bf16/fp16 axolotl trains in fp32")


# ---------------------------------------------------------------- export

_TYPES = {"alpaca": {"type": "alpaca"}, "sharegpt": {"type": "chat_template", "field_messages": "conversations",
                                                     "message_property_mappings": {"role": "from", "content": "value"}},
          "chat": {"type": "chat_template", "field_messages": "messages"}, "text": {"type": "completion"}}


def export_config(cfg: TrainConfig, base: str | Path | None = None) -> MappingReport:
    """An axolotl YAML for `cfg`; the report lists what does not carry over. `base`: the config file's folder,
    against which a relative dataset.dataset_dir is resolved."""
    rep = MappingReport("tunepilot", TITLE)
    out: dict[str, Any] = {}
    data = cfg.to_dict()

    def put(key: str, value: Any, source: str, why: str = "") -> None:
        out[key] = value
        section, _, name = source.partition(".")
        rep.add(source, data.get(section, {}).get(name), "changed" if why else "mapped", key, value, why)

    m, meth, ds, opt, tr, sv = cfg.model, cfg.method, cfg.dataset, cfg.optimizer, cfg.training, cfg.saving
    put("base_model", m.base_model, "model.base_model")
    put("trust_remote_code", m.trust_remote_code, "model.trust_remote_code")
    stage = getattr(meth, "stage", "sft")
    if stage != "sft":
        put("rl", stage, "method.stage")
        put("rl_beta", meth.beta, "method.beta")
        if stage == "dpo" and meth.pref_loss in ("ipo", "simpo"):
            out["rl"] = meth.pref_loss
            rep.add("method.pref_loss", meth.pref_loss, "changed", "rl", meth.pref_loss, "axolotl names the loss as the RL trainer")
        elif stage == "dpo" and meth.pref_loss != "sigmoid":
            rep.add("method.pref_loss", meth.pref_loss, "not_supported", why="axolotl's rl offers dpo, ipo, simpo, orpo, kto")
    if meth.type in ("lora", "qlora"):
        put("adapter", meth.type, "method.type")
        out["load_in_4bit"] = meth.type == "qlora"
        put("lora_r", meth.lora_r, "method.lora_r")
        put("lora_alpha", meth.lora_alpha, "method.lora_alpha")
        put("lora_dropout", meth.lora_dropout, "method.lora_dropout")
        if meth.target_modules == "all-linear":
            put("lora_target_linear", True, "method.target_modules", "`all-linear` is axolotl's lora_target_linear: true")
        else:
            put("lora_target_modules", list(meth.target_modules), "method.target_modules")
    elif meth.type == "full":
        rep.add("method.type", "full", "changed", "adapter", None, "no adapter: axolotl trains every weight")
    else:
        rep.add("method.type", meth.type, "not_supported", why="axolotl's nearest is unfrozen_parameters with regexes of the last layers")
        if "freeze_trainable_layers" in data["method"]:
            rep.add("method.freeze_trainable_layers", meth.freeze_trainable_layers, "not_supported",
                    why="list the last layers' parameters in unfrozen_parameters")
    _export_datasets(cfg, out, rep, base)
    if ds.val_split:
        put("val_set_size", ds.val_split, "dataset.val_split")
    put("sequence_len", ds.max_seq_length, "dataset.max_seq_length")
    put("sample_packing", tr.packing, "training.packing")
    put("output_dir", sv.output_dir or "./outputs/tunepilot", "saving.output_dir",
        "" if sv.output_dir else "tunepilot's default is a folder under $TUNEPILOT_HOME/runs; axolotl needs one")
    put("save_steps", sv.save_every_n_steps, "saving.save_every_n_steps")
    put("save_total_limit", sv.save_total_limit, "saving.save_total_limit")
    put("micro_batch_size", tr.batch_size, "training.batch_size")
    put("gradient_accumulation_steps", tr.gradient_accumulation_steps, "training.gradient_accumulation_steps")
    put("num_epochs", float(tr.epochs), "training.epochs")
    if tr.max_steps:
        put("max_steps", tr.max_steps, "training.max_steps")
    put("optimizer", OPTIMIZER_NAMES[opt.type], "optimizer.type",
        "" if OPTIMIZER_NAMES[opt.type] == opt.type else f"axolotl's name for {opt.type}")
    put("lr_scheduler", opt.lr_scheduler, "optimizer.lr_scheduler")
    put("learning_rate", opt.learning_rate, "optimizer.learning_rate")
    put("warmup_ratio", opt.warmup_ratio, "optimizer.warmup_ratio")
    put("weight_decay", opt.weight_decay, "optimizer.weight_decay")
    if m.dtype == "auto":
        put("bf16", "auto", "model.dtype", "`auto` is axolotl's bf16: auto (bf16 where the GPU supports it)")
    elif m.dtype in ("bfloat16", "float16"):
        flag = "bf16" if m.dtype == "bfloat16" else "fp16"
        put(flag, True, "model.dtype", f"{m.dtype} -> {flag} mixed precision")
    else:
        rep.add("model.dtype", m.dtype, "mapped", why="fp32: neither bf16 nor fp16 is set")
    put("gradient_checkpointing", tr.gradient_checkpointing, "training.gradient_checkpointing")
    put("seed", tr.seed, "training.seed")
    if getattr(tr, "eval_every_n_steps", None):
        put("eval_steps", tr.eval_every_n_steps, "training.eval_every_n_steps")
    report_to = getattr(tr, "report_to", "none")
    if report_to == "wandb":
        put("wandb_project", tr.tracking_project or "tunepilot", "training.report_to", "W&B logging is on when a project is named")
    elif report_to == "tensorboard":
        put("use_tensorboard", True, "training.report_to")
    elif report_to == "mlflow":
        put("mlflow_experiment_name", tr.tracking_project or "tunepilot", "training.report_to",
            "MLflow logging is on when an experiment is named (set mlflow_tracking_uri too)")
    _leftovers(data, rep)
    rep.data = out
    return rep


def _export_datasets(cfg: TrainConfig, out: dict, rep: MappingReport, base=None) -> None:
    from trainer.data.dataset_info import looks_like_names

    ds = cfg.dataset
    for source, key in (("dataset.path", "datasets"), ("dataset.eval_path", "test_datasets")):
        path = getattr(ds, source.split(".")[1])
        if not path:
            continue
        if looks_like_names(path):
            items = _registry_items(path, getattr(ds, "dataset_dir", None), rep, base)
            out[key] = items
            rep.add(source, path, "changed", key, items, "each dataset_info.json entry becomes an axolotl dataset "
                    "with its file and field mapping")
            continue
        fmt = ds.format
        if fmt == "auto":
            from trainer.data.formats import DataError, detect_format, read_rows

            try:
                fmt = detect_format(read_rows(path)[0])
            except (DataError, OSError, ValueError):
                fmt = "auto"
        item = {"path": path, **_TYPES.get(fmt, {})}
        if fmt not in _TYPES:
            rep.notes.append(f"{source} {path}: rows in tunepilot's {fmt!r} format have no axolotl type; set `type` yourself")
        out[key] = [item]
        rep.add(source, path, "mapped", key, [item])
        if source == "dataset.path" and ds.format != "auto":
            rep.add("dataset.format", ds.format, "mapped", f"{key}[0].type", item.get("type"))


def _registry_items(path: str, dataset_dir, rep: MappingReport, base=None) -> list[dict]:
    from trainer.data.dataset_info import DataError, resolve

    try:
        entries = resolve(path, dataset_dir, base)
    except DataError as exc:
        rep.notes.append(f"dataset.path names registry entries that could not be read ({exc}); fill in datasets yourself")
        return [{"path": name} for name in path.split(",")]
    items = []
    for e in entries:
        item: dict[str, Any] = {"path": str(e.file)}
        lost = [k for k in ("history", "tools", "chosen", "rejected", "kto_tag") if e.columns.get(k)]
        if e.formatting == "alpaca":
            cols = {k: e.column(k) for k in ("prompt", "query", "response", "system")}
            if "response" not in e.columns and "prompt" in e.columns:
                item.update(type="completion", field=cols["prompt"])
            else:
                item.update(type="alpaca")
                if (cols["prompt"], cols["query"], cols["response"], cols["system"]) != ("instruction", "input", "output", None):
                    custom = {"field_instruction": cols["prompt"], "field_input": cols["query"],
                              "field_output": cols["response"], "format": "{instruction}\n{input}",
                              "no_input_format": "{instruction}"}
                    if cols["system"]:
                        custom.update(field_system=cols["system"], system_format="{system}")
                    item.update(type=custom)
        else:
            if e.columns.get("system"):
                lost.append("system")
            item.update(type="chat_template", field_messages=e.column("messages"),
                        message_property_mappings={"role": e.tag("role_tag"), "content": e.tag("content_tag")})
            if (e.tag("user_tag"), e.tag("assistant_tag")) != ("user", "assistant"):
                item["roles"] = {"user": [e.tag("user_tag")], "assistant": [e.tag("assistant_tag")],
                                 "system": [e.tag("system_tag")]}
        for key in lost:
            rep.add(f"dataset.path[{e.name}].columns.{key}", e.columns[key], "not_supported",
                    why=f"this export writes no axolotl field for the entry's {key!r} column; adapt the dataset item by hand")
        items.append(item)
    return items


def _leftovers(data: dict, rep: MappingReport) -> None:
    done = {e.key for e in rep.entries}
    nearest = {"training.device": "axolotl picks the device (CUDA_VISIBLE_DEVICES selects GPUs)",
               "hardware.gpu": "used only for tunepilot's memory estimate",
               "hardware.device_memory_gb": "used only for tunepilot's memory estimate",
               "sampling.every_n_steps": "unsupported (no sample generations during training)",
               "sampling.prompts": "unsupported (no sample generations during training)",
               "saving.suffix": "part of tunepilot's model id; unsupported",
               "saving.merge_after_training": "run `axolotl merge-lora` after training",
               "dataset.dataset_dir": "the registry's files are written into datasets"}
    defaults = TrainConfig().to_dict()
    for section, keys in data.items():
        for key, value in keys.items():
            dotted = f"{section}.{key}"
            if dotted in done or value == defaults.get(section, {}).get(key):
                continue
            if dotted == "dataset.format" and value == "auto":
                continue
            if dotted == "dataset.dataset_dir":
                rep.add(dotted, value, "mapped", why=nearest[dotted])
                continue
            rep.add(dotted, value, "not_supported", why=nearest.get(dotted, "unsupported in axolotl"))
