"""Read kohya files into a tunepilot diffusion config, naming every key that does not carry over.

Four kohya formats are recognised (`detect_kohya`):
- sd-scripts training config (`--config_file`, TOML): sections such as `[model_arguments]` that
  sd-scripts flattens into command-line arguments, or the same keys at the top level;
- sd-scripts dataset config (`--dataset_config`, TOML): `[general]`, `[[datasets]]`, `[[datasets.subsets]]`;
- kohya_ss GUI presets and saved configs (JSON, one flat object: `LoRA_type`, `epoch`, `max_resolution`,
  `optimizer` ...);
- kohya_ss GUI `config.toml` (sections `[model]`, `[folders]`, `[advanced]` ... with GUI field names).

`import_kohya(path)` maps each key to a field of `DiffusionConfig` (mapped), or records the value it
became and why (changed), or lists it as not supported with the nearest tunepilot feature; keys that
are empty, off or at kohya's default are listed by name only. Nothing is dropped without a line.
A referenced dataset config (`dataset_config = "..."`) is read too, so its folders become subsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from trainer.planning.diffusion import parse_diffusion
from trainer.planning.diffusion_schema import (
    DiffusionConfig,
    DiffusionSample,
    DiffusionSaving,
    DiffusionTraining,
)
from tunepilot.core.errors import UserError

KINDS = {
    "sd-scripts-training": "kohya sd-scripts training config (config_file.toml)",
    "sd-scripts-dataset": "kohya sd-scripts dataset config (dataset_config.toml)",
    "kohya_ss-preset": "kohya_ss GUI preset / saved config (JSON)",
    "kohya_ss-config": "kohya_ss GUI config.toml",
}
KOHYA_SS_SECTIONS = {"model", "folders", "configuration", "advanced", "basic", "dataset_preparation", "samples", "server",
                     "wd14_caption", "blip_caption", "git_caption", "sd3", "flux", "lora", "dreambooth", "finetune",
                     "huggingface", "sdxl", "flux1", "accelerate_launch", "metadata", "settings"}
KOHYA_SS_ONLY_KEYS = {"LoRA_type", "epoch", "max_resolution", "lr_warmup", "model_list", "save_as_bool",
                      "flux1_checkbox", "sdxl", "train_on_input", "unit", "LyCORIS_preset"}
# Keys no LLM trainer uses (LLaMA-Factory and axolotl share output_dir, learning_rate, optimizer ...):
# a flat file needs several of them before it is called kohya's.
KOHYA_SIGNATURE = {"pretrained_model_name_or_path", "network_module", "network_dim", "network_alpha", "train_batch_size",
                   "train_data_dir", "reg_data_dir", "dataset_config", "caption_extension", "cache_latents", "xformers",
                   "v2", "v_parameterization", "clip_skip", "noise_offset", "max_train_epochs", "save_model_as",
                   "output_name", "save_precision", "sample_sampler", "sample_prompts", "min_snr_gamma",
                   "network_train_unet_only", "enable_bucket", "unet_lr", "text_encoder_lr", "optimizer_type",
                   "prior_loss_weight", "shuffle_caption", "max_resolution", "LoRA_type", "model_list", "epoch"}
KOHYA_MIN_SIGNATURE = 3
DATASET_KEYS = {"resolution", "batch_size", "enable_bucket", "min_bucket_reso", "max_bucket_reso", "caption_extension",
                "shuffle_caption", "keep_tokens", "num_repeats", "flip_aug"}

# kohya key -> tunepilot field (same meaning, value carried over after type conversion).
DIRECT = {
    "pretrained_model_name_or_path": "model.pretrained_model", "v2": "model.v2", "v_parameterization": "model.v_parameterization",
    "vae": "model.vae", "clip_l": "model.clip_l", "t5xxl": "model.t5xxl", "ae": "model.ae",
    "network_dim": "network.dim", "network_alpha": "network.alpha", "network_dropout": "network.dropout",
    "network_train_unet_only": "network.train_unet_only",
    "train_data_dir": "dataset.image_dir", "reg_data_dir": "dataset.reg_dir", "resolution": "dataset.resolution",
    "max_resolution": "dataset.resolution", "caption_extension": "dataset.caption_extension",
    "enable_bucket": "dataset.enable_bucket", "min_bucket_reso": "dataset.min_bucket_reso",
    "max_bucket_reso": "dataset.max_bucket_reso", "shuffle_caption": "dataset.shuffle_caption",
    "keep_tokens": "dataset.keep_tokens", "dataset_repeats": "dataset.repeats", "class_tokens": "dataset.trigger_word",
    "max_train_epochs": "training.epochs", "epoch": "training.epochs", "max_train_steps": "training.max_train_steps",
    "train_batch_size": "training.batch_size", "gradient_accumulation_steps": "training.gradient_accumulation_steps",
    "optimizer_type": "training.optimizer_type", "optimizer": "training.optimizer_type",
    "learning_rate": "training.learning_rate", "unet_lr": "training.unet_lr", "text_encoder_lr": "training.text_encoder_lr",
    "lr_scheduler": "training.lr_scheduler", "lr_warmup_steps": "training.lr_warmup_steps",
    "mixed_precision": "training.mixed_precision", "save_precision": "training.save_precision",
    "sdpa": "training.sdpa", "gradient_checkpointing": "training.gradient_checkpointing",
    "cache_latents": "training.cache_latents", "cache_text_encoder_outputs": "training.cache_text_encoder_outputs",
    "sdxl_cache_text_encoder_outputs": "training.cache_text_encoder_outputs",
    "flux1_cache_text_encoder_outputs": "training.cache_text_encoder_outputs",
    "fp8_base": "training.fp8_base", "seed": "training.seed",
    "sample_every_n_steps": "sample.every_n_steps", "sample_every_n_epochs": "sample.every_n_epochs",
    "sample_sampler": "sample.sampler",
    "output_dir": "saving.output_dir", "output_name": "saving.output_name",
    "save_every_n_epochs": "saving.save_every_n_epochs", "save_model_as": "saving.save_model_as",
}
# Keys read to decide something else (family, attention, optimizer) rather than copied.
DECIDING = {"sdxl", "flux1_checkbox", "LoRA_type", "network_module", "xformers", "use_8bit_adam", "lr_warmup",
            "sample_prompts", "dataset_config"}
# kohya's own defaults: a key at this value changes nothing, so it is listed by name only.
KOHYA_DEFAULTS = {"prior_loss_weight": 1.0, "clip_skip": 1, "max_token_length": 75, "bucket_reso_steps": 64,
                  "num_cpu_threads_per_process": 2, "lr_scheduler_num_cycles": 1, "lr_scheduler_power": 1,
                  "max_grad_norm": 1, "num_processes": 1, "num_machines": 1, "max_data_loader_n_workers": 0,
                  "noise_offset_type": "Original", "dynamo_backend": "no", "dynamo_mode": "default",
                  "huber_schedule": "snr", "huber_c": 0.1, "loss_type": "l2", "LyCORIS_preset": "full",
                  "model_prediction_type": "raw", "guidance_scale": 3.5, "discrete_flow_shift": 1,
                  "t5xxl_max_token_length": 512, "timestep_sampling": "sigma", "max_timestep": 1000, "min_timestep": 0,
                  "train_blocks": "all", "model_list": "custom", "unit": 1, "factor": -1, "sample_sampler": "euler_a"}
NEAREST = {
    "clip_skip": "none: the exported config uses kohya's default (1)",
    "noise_offset": "none in tunepilot's schema; add noise_offset to config_file.toml by hand",
    "min_snr_gamma": "none in tunepilot's schema; add min_snr_gamma to config_file.toml by hand",
    "network_args": "network.dim / network.alpha (plain LoRA only)",
    "optimizer_args": "training.optimizer_type (no optimizer arguments)",
    "logging_dir": "none: tunepilot writes kohya's files but does not run kohya",
    "log_with": "none: tunepilot writes kohya's files but does not run kohya",
    "lr_scheduler_num_cycles": "training.lr_scheduler",
    "full_fp16": "training.mixed_precision", "full_bf16": "training.mixed_precision",
    "mem_eff_attn": "training.sdpa", "color_aug": "none", "random_crop": "none",
    "caption_dropout_rate": "none", "metadata_file": "dataset.subsets (DreamBooth-style folders only)",
    "sdxl_no_half_vae": "none: add no_half_vae to config_file.toml by hand for SDXL in fp16",
    "highvram": "none", "lowvram": "none", "blocks_to_swap": "training.fp8_base (the other way to fit Flux)",
    "bucket_no_upscale": "dataset.enable_bucket (buckets may upscale small images in the export)",
    "bucket_reso_steps": "dataset.min_bucket_reso / max_bucket_reso (the export uses kohya's step of 64)",
    "conv_dim": "network.dim: conv layers (LoCon) are not trained by plain LoRA",
    "conv_alpha": "network.alpha: conv layers (LoCon) are not trained by plain LoRA",
    "max_data_loader_n_workers": "none: a dataloader setting of the machine that runs kohya",
    "persistent_data_loader_workers": "none: a dataloader setting of the machine that runs kohya",
    "cache_latents_to_disk": "training.cache_latents (cached in memory)",
    "save_every_n_steps": "saving.save_every_n_epochs", "save_last_n_steps": "saving.save_every_n_epochs",
    "save_state": "none: tunepilot does not resume kohya runs", "resume": "none: tunepilot does not resume kohya runs",
    "max_token_length": "none: the export uses kohya's 75 tokens", "stop_text_encoder_training": "network.train_unet_only",
    "multires_noise_iterations": "none in tunepilot's schema", "multires_noise_discount": "none in tunepilot's schema",
    "adaptive_noise_scale": "none in tunepilot's schema", "scale_weight_norms": "none in tunepilot's schema",
    "training_comment": "none: metadata of the LoRA file", "num_cpu_threads_per_process": "none: an accelerate launch setting",
    "down_lr_weight": "training.unet_lr (one rate for all blocks)", "mid_lr_weight": "training.unet_lr (one rate for all blocks)",
    "up_lr_weight": "training.unet_lr (one rate for all blocks)", "block_lr_zero_threshold": "training.unet_lr",
    "block_dims": "network.dim (one rank for all blocks)", "block_alphas": "network.alpha (one alpha for all blocks)",
    "lora_network_weights": "none: start from an existing LoRA by hand (network_weights)",
    "network_weights": "none: start from an existing LoRA by hand (network_weights)",
}
ADAPTER_TYPES = {"Standard": "networks.lora", "Flux1": "networks.lora_flux"}


@dataclass
class KohyaImport:
    kind: str
    path: str
    config: DiffusionConfig
    mapped: list[dict] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)
    unsupported: list[dict] = field(default_factory=list)
    unset: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return KINDS[self.kind]

    def to_dict(self) -> dict:
        return {"format": self.kind, "format_name": self.label, "path": self.path, "config": self.config.to_dict(),
                "mapped": self.mapped, "changed": self.changed, "unsupported": self.unsupported, "unset_or_default": self.unset}


# ---------------------------------------------------------------- detection

def detect_kohya(data: Any) -> str | None:
    """Which kohya format `data` (a parsed file) is, or None."""
    if not isinstance(data, dict) or not data:
        return None
    tables = {k for k, v in data.items() if isinstance(v, dict)}
    datasets = data.get("datasets")
    image_datasets = (isinstance(datasets, list) and datasets and all(isinstance(d, dict) for d in datasets)
                      and any("subsets" in d or set(d) & (DATASET_KEYS - {"caption_extension"}) for d in datasets)
                      and not any("path" in d for d in datasets))  # axolotl's `datasets:` entries name a `path`
    if image_datasets or ("general" in tables and not tables - {"general"} and set(data["general"]) & DATASET_KEYS):
        return "sd-scripts-dataset"
    if tables and tables <= KOHYA_SS_SECTIONS and tables & {"folders", "configuration", "advanced", "basic", "model"}:
        flat = _flatten(data)
        if set(flat) & (KOHYA_SS_ONLY_KEYS | {"models_dir", "config_dir", "vae_dir", "state_dir"}) or "folders" in tables:
            return "kohya_ss-config"
    if tables and all(t.endswith("_arguments") for t in tables):
        return "sd-scripts-training"
    if not tables:
        keys = set(data)
        if len(keys & KOHYA_SIGNATURE) < KOHYA_MIN_SIGNATURE:
            return None
        return "kohya_ss-preset" if keys & KOHYA_SS_ONLY_KEYS else "sd-scripts-training"
    return None


def _flatten(data: dict) -> dict[str, tuple[str, Any]]:
    """Section tables flattened as sd-scripts does: key -> (where it was written, value)."""
    flat: dict[str, tuple[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                flat[sub] = (f"{key}.{sub}", inner)
        else:
            flat[key] = (key, value)
    return flat


# ---------------------------------------------------------------- import

class KohyaImportError(UserError):
    code = "kohya_import"


def read_kohya(path: str | Path) -> tuple[str, dict]:
    from trainer.planning.config_io import ConfigError, read_config_data

    try:
        data = read_config_data(path)
    except ConfigError as exc:
        raise KohyaImportError("; ".join(p["message"] for p in exc.problems)) from None
    kind = detect_kohya(data)
    if kind is None:
        raise KohyaImportError(f"{path} is not a kohya file this reader knows; known formats: "
                               + "; ".join(KINDS.values()))
    return kind, data


def import_kohya(path: str | Path) -> KohyaImport:
    """Map a kohya file (any of the four formats) onto a DiffusionConfig with a report of every key."""
    path = Path(path)
    kind, data = read_kohya(path)
    builder = _Builder(path)
    if kind == "sd-scripts-dataset":
        builder.dataset_file(data, prefix="")
        builder.changed.append({"key": "(training settings)", "field": "training", "value": "defaults",
                                "why": "a dataset config holds no training settings; tunepilot's defaults are used"})
    else:
        builder.training_file(_flatten(data), kind)
    cfg = builder.build()
    return KohyaImport(kind, str(path), cfg, builder.mapped, builder.changed, builder.unsupported, builder.unset)


def _is_unset(value: Any) -> bool:
    return value in ("", None, False, 0, 0.0) or value == []


def _number(value: Any) -> Any:
    """kohya_ss writes numbers as strings ("12345", "0.0001"); read them as numbers."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d*)?([eE]-?\d+)?\s*", value):
        number = float(value)
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def _choices(model, name: str) -> tuple[str, ...]:
    return get_args(model.model_fields[name].annotation)


class _Builder:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, dict] = {}
        self.mapped: list[dict] = []
        self.changed: list[dict] = []
        self.unsupported: list[dict] = []
        self.unset: list[str] = []
        self.base_hint: tuple[str, str] | None = None

    # -- recording
    def put(self, key: str, field_path: str, value: Any, why: str | None = None) -> None:
        section, name = field_path.split(".")
        self.data.setdefault(section, {})[name] = value
        entry = {"key": key, "field": field_path, "value": value}
        (self.changed if why else self.mapped).append({**entry, "why": why} if why else entry)

    def skip(self, key: str, value: Any, nearest: str | None = None) -> None:
        name = key.rsplit(".", 1)[-1]
        if _is_unset(value) or KOHYA_DEFAULTS.get(name, object()) == _number(value):
            self.unset.append(key)
        else:
            self.unsupported.append({"key": key, "value": value,
                                     "nearest": nearest or NEAREST.get(name, "no tunepilot equivalent; add it to the exported config_file.toml by hand")})

    # -- training-style files (sd-scripts config_file.toml, kohya_ss preset and config.toml)
    def training_file(self, flat: dict[str, tuple[str, Any]], kind: str) -> None:
        values = {k: _number(v) for k, (_, v) in flat.items()}
        where = {k: w for k, (w, _) in flat.items()}
        self._family(values, where, kind)
        for key, value in values.items():
            loc = where[key]
            if key in DECIDING:
                self._deciding(key, loc, value, values)
            elif key in DIRECT:
                self._direct(key, loc, DIRECT[key], value)
            else:
                self.skip(loc, value)

    def _direct(self, key: str, loc: str, field_path: str, value: Any) -> None:
        if value == "" or value is None:
            self.unset.append(loc)
            return
        section, name = field_path.split(".")
        if field_path == "dataset.resolution":  # kohya writes 1024, "1024,1024" or [768, 768]
            parts = [str(p).strip() for p in (value if isinstance(value, list) else str(value).split(","))]
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                value = int(parts[0]) if parts[0] == parts[1] else f"{parts[0]},{parts[1]}"
            elif len(parts) == 1 and parts[0].isdigit():
                value = int(parts[0])
        if field_path == "training.optimizer_type":
            self._optimizer(loc, value)
            return
        model = {"training": DiffusionTraining, "sample": DiffusionSample, "saving": DiffusionSaving}.get(section)
        if model is not None and name in model.model_fields:
            allowed = _choices(model, name)
            if allowed and all(isinstance(a, str) for a in allowed) and value not in allowed:
                match = next((a for a in allowed if str(a).lower() == str(value).lower()), None)
                if match is None:
                    self.skip(loc, value, f"{field_path} (one of: {', '.join(allowed)})")
                    return
                value = match
        if field_path in ("dataset.keep_tokens", "training.seed", "training.batch_size", "training.epochs",
                          "network.dim") and isinstance(value, float) and value.is_integer():
            value = int(value)
        self.put(loc, field_path, value)

    def _optimizer(self, loc: str, value: Any) -> None:
        allowed = _choices(DiffusionTraining, "optimizer_type")
        match = next((a for a in allowed if a.lower() == str(value).lower()), None)
        if match is None:
            self.skip(loc, value, f"training.optimizer_type (one of: {', '.join(allowed)})")
        else:
            self.put(loc, "training.optimizer_type", match)

    def _family(self, values: dict, where: dict, kind: str) -> None:
        module = str(values.get("network_module") or "")
        lora_type = str(values.get("LoRA_type") or "")
        if values.get("flux1_checkbox") or lora_type == "Flux1" or module == "networks.lora_flux":
            base, why = "flux", "the file selects Flux.1 (flux1_checkbox / LoRA_type / network_module)"
        elif values.get("sdxl") is True:
            base, why = "sdxl", "the file sets sdxl = true"
        elif values.get("v2") is True:
            base, why = "sd2", "the file sets v2 = true"
        elif kind != "sd-scripts-training" and "sdxl" in values:
            base, why = "sd15", "the file sets sdxl, v2 and the Flux switch off"
        elif any(values.get(k) for k in ("clip_l", "t5xxl", "ae")):
            base, why = "flux", "the file names Flux's clip_l / t5xxl / ae"
        elif values.get("cache_text_encoder_outputs") or values.get("sdxl_cache_text_encoder_outputs"):
            base, why = "sdxl", "guessed from SDXL-only keys; the training script (sdxl_train_network.py) is not in the file — check model.base"
        elif _family_from_name(str(values.get("pretrained_model_name_or_path") or "")):
            base = _family_from_name(str(values["pretrained_model_name_or_path"]))
            why = (f"guessed from the checkpoint name ({Path(str(values['pretrained_model_name_or_path'])).name}); the training "
                   "script is not in the file — check model.base")
        else:
            res = str(values.get("resolution") or values.get("max_resolution") or self._dataset_resolution(values) or "")
            big = res and max(int(p) for p in re.findall(r"\d+", res) or [0]) >= 1024
            base = "sdxl" if big else "sd15"
            why = (f"guessed from the resolution ({res or 'not set'}); the training script is not in the file — "
                   "check model.base (sd15, sd2, sdxl or flux)")
        self.put("(model family)", "model.base", base, why)

    def _dataset_resolution(self, values: dict) -> Any:
        """The resolution a referenced dataset config sets (to guess the family from)."""
        ref = values.get("dataset_config")
        if not ref:
            return None
        target = Path(str(ref)).expanduser()
        target = target if target.is_absolute() else self.path.parent / target
        try:
            _, data = read_kohya(target)
        except UserError:
            return None
        first = (data.get("datasets") or [{}])[0]
        return first.get("resolution", (data.get("general") or {}).get("resolution"))

    def _deciding(self, key: str, loc: str, value: Any, values: dict) -> None:
        if key in ("sdxl", "flux1_checkbox"):
            self.mapped.append({"key": loc, "field": "model.base", "value": self.data["model"]["base"]})
        elif key == "LoRA_type":
            if value in ADAPTER_TYPES:
                self.mapped.append({"key": loc, "field": "model.base", "value": self.data["model"]["base"]})
            else:
                self.skip(loc, value, "network.dim / network.alpha: tunepilot writes plain LoRA (networks.lora); "
                                      "LyCORIS types (LoCon, LoHa, LoKr, iA3) are not supported")
        elif key == "network_module":
            if value in ("networks.lora", "networks.lora_flux"):
                self.mapped.append({"key": loc, "field": "model.base", "value": self.data["model"]["base"]})
            else:
                self.skip(loc, value, "plain LoRA only (networks.lora / networks.lora_flux)")
        elif key == "xformers":
            text = str(value).lower()
            if value is True or text == "xformers":
                self.put(loc, "training.xformers", True)
                self.put(loc, "training.sdpa", False, "kohya_ss picks one attention; xformers was chosen")
            elif text in ("sdpa", "sdp"):
                self.put(loc, "training.sdpa", True)
                self.put(loc, "training.xformers", False)
            else:
                self.put(loc, "training.xformers", False)
                self.put(loc, "training.sdpa", False, "the file turns fast attention off")
        elif key == "use_8bit_adam":
            if value is True:
                self.put(loc, "training.optimizer_type", "AdamW8bit")
            else:
                self.unset.append(loc)
        elif key == "lr_warmup":
            if _is_unset(value):
                self.unset.append(loc)
            else:
                self.skip(loc, value, "training.lr_warmup_steps: kohya_ss's lr_warmup is a percentage of all steps; "
                                      "set lr_warmup_steps to that share of the step plan")
        elif key == "sample_prompts":
            self._prompts(loc, value)
        elif key == "dataset_config":
            if _is_unset(value):
                self.unset.append(loc)
                return
            target = Path(str(value)).expanduser()
            target = target if target.is_absolute() else self.path.parent / target
            try:
                kind, data = read_kohya(target)
            except UserError as exc:
                self.skip(loc, value, f"dataset.subsets: the dataset config could not be read ({exc})")
                return
            if kind != "sd-scripts-dataset":
                self.skip(loc, value, f"dataset.subsets: {target} is a {KINDS[kind]}, not a dataset config")
                return
            self.mapped.append({"key": loc, "field": "dataset.subsets", "value": str(target)})
            self.dataset_file(data, prefix=f"{target.name}:")

    def _prompts(self, loc: str, value: Any) -> None:
        if _is_unset(value):
            self.unset.append(loc)
            return
        text = str(value)
        file = Path(text).expanduser()
        file = file if file.is_absolute() else self.path.parent / file
        if text.endswith((".txt", ".toml", ".json")) or file.is_file():
            if not file.is_file() or text.endswith(".json"):
                self.skip(loc, value, "sample.prompts (write the prompts into the tunepilot config; .txt and .toml prompt "
                                      "files are read, and this one " + ("is JSON)" if file.is_file() else "does not exist)"))
                return
            if text.endswith(".toml"):
                self._prompt_toml(loc, file)
                return
            text = file.read_text(encoding="utf-8-sig")
        prompts = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            prompts.append(_prompt_line(line))
        self.data.setdefault("sample", {})["prompts"] = [p for p, _ in prompts]
        self.mapped.append({"key": loc, "field": "sample.prompts", "value": [p["prompt"] for p, _ in prompts]})
        for _, rest in prompts:
            for flag, val in rest.items():
                target = {"s": "sample.steps", "l": "sample.scale"}.get(flag)
                if target:
                    self.put(f"{loc} --{flag}", target, _number(val), "per-prompt steps/scale become the run's sample settings")
                else:
                    self.skip(f"{loc} --{flag}", val, "sample.prompts (prompt, negative_prompt, width, height, seed)")

    def _prompt_toml(self, loc: str, file: Path) -> None:
        """kohya's sample_prompt.toml: `[prompt]` defaults and `[[prompt.subset]]` prompts."""
        import tomllib

        try:
            table = tomllib.loads(file.read_text(encoding="utf-8-sig")).get("prompt") or {}
        except tomllib.TOMLDecodeError as exc:
            self.skip(loc, str(file), f"sample.prompts (the prompt file is not valid TOML: {exc})")
            return
        keep = ("prompt", "negative_prompt", "width", "height", "seed")
        prompts = []
        for i, sub in enumerate(table.get("subset") or []):
            prompts.append({k: sub[k] for k in keep if k in sub})
            for key in set(sub) - set(keep):
                self.skip(f"{file.name}:prompt.subset[{i}].{key}", sub[key], "sample.steps / sample.scale (one value for all prompts)")
        self.data.setdefault("sample", {})["prompts"] = prompts
        self.mapped.append({"key": loc, "field": "sample.prompts", "value": [p.get("prompt") for p in prompts]})
        for key, field_path in (("sample_steps", "sample.steps"), ("scale", "sample.scale")):
            if key in table:
                self.put(f"{file.name}:prompt.{key}", field_path, table[key])
        for key in set(table) - {"subset", "sample_steps", "scale", "width", "height"}:
            self.skip(f"{file.name}:prompt.{key}", table[key], "sample.prompts[].negative_prompt / seed (per prompt)")
        for key in ("width", "height"):  # a default for every prompt: written into each one that has none
            if key in table:
                for p in prompts:
                    p.setdefault(key, table[key])
                self.mapped.append({"key": f"{file.name}:prompt.{key}", "field": f"sample.prompts[].{key}", "value": table[key]})

    # -- dataset config TOML
    def dataset_file(self, data: dict, prefix: str) -> None:
        general = data.get("general") or {}
        datasets = data.get("datasets") or []
        for key in set(data) - {"general", "datasets"}:
            self.skip(f"{prefix}{key}", data[key])
        defaults = dict(general)
        subsets = []
        first = datasets[0] if datasets else {}
        for i, ds in enumerate(datasets):
            if i and ds.get("resolution", first.get("resolution")) != first.get("resolution"):
                self.skip(f"{prefix}datasets[{i}]", f"resolution {ds.get('resolution')}",
                          "one resolution per tunepilot config: make a second config for this dataset")
                continue
            merged = {**defaults, **{k: v for k, v in ds.items() if k != "subsets"}}
            for j, sub in enumerate(ds.get("subsets") or []):
                subsets.append(self._subset(f"{prefix}datasets[{i}].subsets[{j}]", {**merged, **sub}, sub))
        level = {**general, **{k: v for k, v in first.items() if k != "subsets"}}
        for key, value in level.items():
            loc = f"{prefix}{'datasets[0]' if key in first else 'general'}.{key}"
            if key == "batch_size":
                self.put(loc, "training.batch_size", value)
            elif key == "num_repeats":
                self.mapped.append({"key": loc, "field": "dataset.subsets[].repeats", "value": value})
            elif key in DIRECT and DIRECT[key].startswith("dataset."):
                self._direct(key, loc, DIRECT[key], value)
            elif key not in ("flip_aug",):
                self.skip(loc, value)
        if subsets:
            self.data.setdefault("dataset", {})["subsets"] = subsets

    def _subset(self, loc: str, values: dict, own: dict) -> dict:
        out = {"image_dir": str(values.get("image_dir", "")), "repeats": int(values.get("num_repeats", 1))}
        if "image_dir" not in values:
            self.skip(f"{loc}", "(no image_dir)", "dataset.subsets need image_dir (metadata_file subsets are not supported)")
        for key in ("class_tokens", "is_reg", "caption_extension", "keep_tokens", "shuffle_caption", "flip_aug"):
            if key in values:
                out[key] = values[key]
        for key, value in own.items():
            if key in ("image_dir", "num_repeats", "class_tokens", "is_reg", "caption_extension", "keep_tokens",
                       "shuffle_caption", "flip_aug"):
                self.mapped.append({"key": f"{loc}.{key}", "field": f"dataset.subsets[].{'repeats' if key == 'num_repeats' else key}",
                                    "value": value})
            else:
                self.skip(f"{loc}.{key}", value)
        return out

    def build(self) -> DiffusionConfig:
        from trainer.planning.config_io import ConfigError

        try:
            return parse_diffusion(self.data)
        except ConfigError as exc:
            problems = "; ".join(f"{p['loc']}: {p['message']}" for p in exc.problems)
            raise KohyaImportError(f"{self.path}: the mapped values are not valid ({problems})") from None


def _family_from_name(name: str) -> str | None:
    """The family a checkpoint's file name announces (sd_xl_base_1.0, flux1-dev, v1-5-pruned ...)."""
    stem = Path(name).name.lower()
    for pattern, base in ((r"flux", "flux"), (r"sd_?xl|sdxl|[-_]xl[-_.]", "sdxl"), (r"v1-5|sd_?1\.?5|sd15", "sd15"),
                          (r"v2-1|sd_?2|768-v", "sd2")):
        if re.search(pattern, stem):
            return base
    return None


def _prompt_line(line: str) -> tuple[dict, dict]:
    """kohya's prompt-line options: `prompt --n negative --w 768 --h 768 --d seed --s steps --l scale`."""
    parts = re.split(r"\s--(\w+)\s*", " " + line)
    prompt = {"prompt": parts[0].strip()}
    rest = {}
    for flag, value in zip(parts[1::2], parts[2::2]):
        value = value.strip()
        key = {"n": "negative_prompt", "w": "width", "h": "height", "d": "seed"}.get(flag)
        if key:
            prompt[key] = value if key == "negative_prompt" else int(float(value))
        else:
            rest[flag] = value
    return prompt, rest


def load_any_diffusion(path: str | Path) -> tuple[DiffusionConfig, KohyaImport | None]:
    """A tunepilot diffusion config, or any kohya file (imported); the import report comes along."""
    from trainer.planning.config_io import read_config_data

    data = read_config_data(path)
    if detect_kohya(data) is not None:
        result = import_kohya(path)
        return result.config, result
    return parse_diffusion(data), None


def is_kohya_file(path: str | Path) -> bool:
    """Whether `path` parses as one of the kohya formats (False when it cannot be read)."""
    from trainer.planning.config_io import ConfigError, read_config_data

    try:
        return detect_kohya(read_config_data(path)) is not None
    except ConfigError:
        return False


def kohya_format_problem(data, name: str = "this file") -> dict | None:
    """The one-line problem `config validate` shows for a kohya file (instead of a wall of unknown keys)."""
    kind = detect_kohya(data)
    if kind is None:
        return None
    return {"loc": "", "rule": "peer-format",
            "message": f"{name} is a {KINDS[kind]}, not a tunepilot training config; check it with "
                       f"`tunepilot config diffusion validate {name}` or convert it with "
                       f"`tunepilot config import {name} --from kohya --out diffusion.toml`"}
