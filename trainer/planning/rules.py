"""Validation rules for training configs, as data: each rule has an id, a severity, the field it is
about, a message that says the fix, and the documentation passage (knowledge/docs, en + zh) it
comes from. `validate(cfg)` runs them all and collects every finding in one pass.

Rules about the environment (CUDA, bitsandbytes, bf16 support) judge the config against where it
will run: the GPU named in `hardware.gpu` when one is given (a config written on a laptop for a
rented A100), otherwise this machine. `for_launch=True` always judges this machine and adds the
checks that need the filesystem (dataset present and readable, output folder writable).
The environment probe is injectable (`validate(cfg, env=Environment(...))`) so tests can pretend.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from trainer.models.device import Environment
from trainer.planning.schema import LORA_KEYS, TrainConfig
from tunepilot.core.settings import settings

# Optimizers that come from bitsandbytes (CUDA kernels) -> what to use without it. Lion is bitsandbytes'
# implementation too (transformers' "lion_32bit"), so its CPU alternative is AdamW.
BNB_OPTIMIZERS = {"adamw_8bit": "adamw", "paged_adamw_8bit": "adamw", "lion": "adamw", "lion_8bit": "adamw"}
# Typical AdamW peak learning rates by method (hyperparameters.md, "Learning rate").
TYPICAL_ADAMW_LR = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5, "freeze": 5e-5}


# ---------------------------------------------------------------- findings and rules

@dataclass
class Finding:
    rule_id: str
    severity: str
    field: str
    message: str
    source: str
    heading: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ValidationReport:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def findings(self) -> list[Finding]:
        return self.errors + self.warnings

    def to_dict(self) -> dict:
        return {"errors": [f.to_dict() for f in self.errors], "warnings": [f.to_dict() for f in self.warnings]}


class Context:
    """What the checks see: the config, the target environment, and lazily the model and estimate."""

    def __init__(self, cfg: TrainConfig, env: Environment, for_launch: bool, overwrite: bool = False):
        self.cfg = cfg
        self.env = env
        self.for_launch = for_launch
        self.overwrite = overwrite

    @cached_property
    def dims(self):
        from trainer.models.catalog import lookup

        return lookup(self.cfg.model.base_model)

    @cached_property
    def estimate(self):
        from trainer.planning.memory import EstimateError, estimate

        try:
            return estimate(self.cfg, env=self.env)
        except (EstimateError, ValueError, ZeroDivisionError, OverflowError):
            return None  # no estimate, no memory findings; model-dims-unknown says why

    @property
    def device(self) -> str:
        from trainer.planning.memory import target_device

        return target_device(self.cfg, self.env)


Check = Callable[[Context], "dict | bool | None"]


@dataclass(frozen=True)
class Rule:
    """One rule: `check` returns a falsy value when the config is fine, else True or a dict of values
    for the message template."""

    id: str
    severity: str  # "error" | "warning"
    field: str
    message: str
    doc: str  # file name under knowledge/docs/<lang>/
    heading: str  # exact heading in the English doc
    heading_zh: str  # the same section in the Chinese doc
    check: Check
    launch_only: bool = False

    @property
    def source(self) -> str:
        return f"en/{self.doc}"

    def citation(self, lang: str = "en") -> tuple[str, str]:
        """(source, heading) of the doc section this rule comes from, in the reader's language."""
        return (f"zh/{self.doc}", self.heading_zh) if lang == "zh" else (self.source, self.heading)


# ---------------------------------------------------------------- check helpers

def _lora(ctx: Context) -> bool:
    return ctx.cfg.method.type in ("lora", "qlora")


def _has_eval(ctx: Context) -> bool:
    return bool(ctx.cfg.dataset.eval_path) or ctx.cfg.dataset.val_split > 0


def _lion_lr(ctx: Context):
    cfg = ctx.cfg
    if cfg.optimizer.type not in ("lion", "lion_8bit"):
        return None
    adamw = TYPICAL_ADAMW_LR[cfg.method.type]
    limit = adamw / 3
    if cfg.optimizer.learning_rate > limit * 1.0001:
        return {"lr": f"{cfg.optimizer.learning_rate:g}", "adamw": f"{adamw:g}", "low": f"{adamw / 10:.1g}", "high": f"{limit:.1g}"}
    return None


def _memory_exceeds(ctx: Context):
    est = ctx.estimate
    if est is None or est.fits is not False:
        return None
    return {"total": est.total_gb, "memory": est.device_memory_gb, "batch": est.max_batch_size}


def _checkpointing_tight(ctx: Context):
    est = ctx.estimate
    if est is None or ctx.cfg.training.gradient_checkpointing or est.device_memory_gb is None:
        return None
    if est.total_gb > 0.85 * est.device_memory_gb:
        return {"total": est.total_gb, "memory": est.device_memory_gb,
                "share": round(100 * est.total_gb / est.device_memory_gb)}
    return None


def _remote_code_required(ctx: Context):
    dims = ctx.dims
    if dims is not None and dims.needs_remote_code and not ctx.cfg.model.trust_remote_code:
        return {"model": dims.name}
    return None


def _bf16_unsupported(ctx: Context):
    cfg = ctx.cfg
    if cfg.model.dtype == "bfloat16" and ctx.device == "cuda" and ctx.env.has_cuda and not ctx.env.cuda_bf16:
        return {"where": ctx.env.description}
    return None


def _device_unavailable(ctx: Context):
    device = ctx.cfg.training.device
    if device == "cuda" and not ctx.env.has_cuda:
        return {"device": device, "where": ctx.env.description}
    if device == "mps" and not ctx.env.has_mps:
        return {"device": device, "where": ctx.env.description}
    return None


def _gpu_unknown(ctx: Context):
    from trainer.planning.hardware import lookup_gpu

    gpu = ctx.cfg.hardware.gpu
    if gpu and lookup_gpu(gpu) is None and not ctx.cfg.hardware.device_memory_gb:
        return {"gpu": gpu}
    return None


def _seq_beyond_model(ctx: Context):
    dims = ctx.dims
    if dims is not None and ctx.cfg.dataset.max_seq_length > dims.max_position_embeddings:
        return {"limit": dims.max_position_embeddings, "model": dims.name}
    return None


def _freeze_layers(ctx: Context):
    cfg = ctx.cfg
    if cfg.method.type != "freeze":
        return None
    layers = ctx.dims.num_layers if ctx.dims is not None else None
    n = cfg.method.freeze_trainable_layers
    if n < 1 or (layers is not None and n > layers):
        return {"n": n, "layers": layers if layers is not None else "the model's layer count"}
    return None


def _lora_keys_ignored(ctx: Context):
    cfg = ctx.cfg
    if cfg.method.type not in ("full", "freeze"):
        return None
    # Only keys written explicitly *and* changed from their defaults: a form that always sends the
    # defaults (the UI's config card) is not the user's doing.
    defaults = type(cfg.method)()
    given = sorted(k for k in cfg.method.model_fields_set & set(LORA_KEYS) if getattr(cfg.method, k) != getattr(defaults, k))
    return {"keys": ", ".join(f"method.{k}" for k in given), "method": cfg.method.type} if given else None


def _preference(ctx: Context) -> bool:
    return ctx.cfg.method.stage != "sft"


def _preference_lr_high(ctx: Context):
    cfg = ctx.cfg
    if not _preference(ctx) or cfg.optimizer.type in ("lion", "lion_8bit"):
        return None
    sft = TYPICAL_ADAMW_LR[cfg.method.type]
    if cfg.optimizer.learning_rate > sft / 2:
        return {"lr": f"{cfg.optimizer.learning_rate:g}", "stage": cfg.method.stage, "sft": f"{sft:g}",
                "suggest": f"{sft / 10:g}"}
    return None


def _preference_keys_ignored(ctx: Context):
    """beta / pref_loss written (and changed from the default) where the stage does not read them."""
    m = ctx.cfg.method
    defaults = type(m)()
    given = {k for k in m.model_fields_set & {"beta", "pref_loss"} if getattr(m, k) != getattr(defaults, k)}
    ignored = sorted(given) if m.stage == "sft" else sorted(given & {"pref_loss"}) if m.stage != "dpo" else []
    return {"keys": ", ".join(f"method.{k}" for k in ignored), "stage": m.stage} if ignored else None


def _preference_data_kind(ctx: Context):
    """The training file's kind (SFT / preference pairs / KTO labels) must be what method.stage trains on."""
    from trainer.data.preference import is_preference_file

    path, stage = ctx.cfg.dataset.path, ctx.cfg.method.stage
    if not path or not Path(path).expanduser().is_file():
        return None  # dataset-missing says so
    kind = is_preference_file(path)
    wanted = {"sft": None, "dpo": "preference", "orpo": "preference", "kto": "kto"}[stage]
    if kind == wanted:
        return None
    what = {"preference": "a preference set (chosen/rejected pairs)", "kto": "a KTO set (replies labelled true/false)",
            None: "SFT data (no chosen/rejected pairs or labels)"}[kind]
    fix = {"preference": 'method.stage = "dpo" (or "orpo")', "kto": 'method.stage = "kto"', None: 'method.stage = "sft"'}[kind]
    return {"path": Path(path).name, "what": what, "stage": stage, "fix": fix}


# ---------------------------------------------------------------- launch checks (filesystem)

def _registry_problem(path: str, dataset_dir: str | None) -> dict | None:
    """Names of a LLaMA-Factory dataset_info.json (trainer.data.dataset_info): None when they all resolve."""
    from trainer.data.dataset_info import DataError, resolve

    try:
        resolve(path, dataset_dir)
    except DataError as exc:
        return {"path": f"{path} ({exc})"}
    return None


def _dataset_missing(ctx: Context):
    from trainer.data.dataset_info import looks_like_names

    path = ctx.cfg.dataset.path
    if not path:
        return {"path": "(empty)"}
    if looks_like_names(path):
        return _registry_problem(path, ctx.cfg.dataset.dataset_dir)
    return None if Path(path).expanduser().is_file() else {"path": path}


def _eval_missing(ctx: Context):
    from trainer.data.dataset_info import looks_like_names

    path = ctx.cfg.dataset.eval_path
    if path and looks_like_names(path):
        return _registry_problem(path, ctx.cfg.dataset.dataset_dir)
    if path and not Path(path).expanduser().is_file():
        return {"path": path}
    return None


def detect_format(path: str | Path, max_rows: int = 50) -> str | None:
    """The row format of a JSON/JSONL/CSV file from its first rows, or None when none is recognised.

    Uses the trainer's own reader (encodings, JSON vs JSON Lines, majority vote), so this check and
    the data loader agree.
    """
    from trainer.data.formats import DataError, read_rows
    from trainer.data.formats import detect_format as trainer_detect

    try:
        rows, _encoding, _kind = read_rows(path)
        return trainer_detect(rows[:max_rows])
    except (DataError, OSError, ValueError):
        return None


def _format_undetectable(ctx: Context):
    path = ctx.cfg.dataset.path
    if not path or not Path(path).expanduser().is_file():
        return None  # dataset-missing already says so
    if ctx.cfg.dataset.format != "auto":
        return None  # an explicit format is the user's call; the data check reports rows that do not fit it
    from trainer.data.preference import is_preference_file

    if is_preference_file(path):
        return None  # pairs / KTO rows: preference-data-kind judges them against method.stage
    if detect_format(path) is None:
        return {"path": path, "found": "no known format"}
    return None


def _output_not_writable(ctx: Context):
    out = ctx.cfg.saving.output_dir
    if not out:
        return None  # a fresh folder under $TUNEPILOT_HOME/runs
    p = Path(out).expanduser()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        return {"path": out, "parent": str(probe)}
    return None


def _output_clobbers(ctx: Context):
    from trainer.planning.output_dir import inspect

    out = ctx.cfg.saving.output_dir
    if not out:
        return None  # a fresh folder under $TUNEPILOT_HOME/runs
    state = inspect(out)  # the same rules the job queue and the recipe apply
    return {"path": out, "what": state.holds} if state.clobbered(ctx.overwrite) else None


def _base_model_missing(ctx: Context):
    from trainer.models.registry import DEFAULT_MODEL

    name = ctx.cfg.model.base_model
    if name == DEFAULT_MODEL:
        return None
    local = Path(name).expanduser()
    if local.exists():
        has_config = (local / "config.json").exists() or (local / "adapter_config.json").exists()
        return None if has_config else {"model": name, "why": "the folder has no config.json"}
    if "/" in name and name.count("/") == 1 and not name.startswith((".", "/", "~")):
        if settings().hub_offline:
            return {"model": name, "why": "it is a hub id and HF_HUB_OFFLINE=1"}
        return None
    try:
        from trainer.models.registry import resolve

        resolve(name, provision=False, progress=False)
    except Exception as exc:  # ModelError carries the user-facing reason
        return {"model": name, "why": str(exc).split(";")[0]}
    return None


# ---------------------------------------------------------------- the rule table

def _r(id, severity, field, message, doc, heading, heading_zh, check, launch_only=False) -> Rule:
    return Rule(id, severity, field, message, doc, heading, heading_zh, check, launch_only)


H = "hyperparameters.md"
P = "preference-tuning.md"
RULES: list[Rule] = [
    # --- learning rate
    _r("learning-rate-positive", "error", "optimizer.learning_rate",
       "The learning rate must be greater than 0; use 2e-4 for LoRA/QLoRA or 2e-5 for full fine-tuning.",
       H, "Learning rate", "学习率", lambda c: c.cfg.optimizer.learning_rate <= 0),
    _r("learning-rate-too-high", "warning", "optimizer.learning_rate",
       "A learning rate of {lr} is above 1e-3, where fine-tuning usually diverges (loss jumps or becomes NaN); use 1e-4 to 3e-4 for LoRA.",
       H, "Learning rate", "学习率",
       lambda c: {"lr": f"{c.cfg.optimizer.learning_rate:g}"} if c.cfg.optimizer.learning_rate > 1e-3 else None),
    _r("full-finetune-learning-rate", "warning", "optimizer.learning_rate",
       "Full fine-tuning with a learning rate of {lr} updates every weight too far; full fine-tuning uses about 1e-5 to 5e-5, roughly ten times below LoRA. Set optimizer.learning_rate = 2e-5.",
       H, "Learning rate", "学习率",
       lambda c: {"lr": f"{c.cfg.optimizer.learning_rate:g}"}
       if c.cfg.method.type in ("full", "freeze") and c.cfg.optimizer.learning_rate > 1e-4
       and c.cfg.optimizer.type not in ("lion", "lion_8bit") else None),
    _r("lora-learning-rate-low", "warning", "optimizer.learning_rate",
       "A learning rate of {lr} is very low for LoRA: the adapters start at zero and barely move; use 1e-4 to 3e-4.",
       "lora.md", "Learning rate for LoRA", "LoRA 的学习率",
       lambda c: {"lr": f"{c.cfg.optimizer.learning_rate:g}"}
       if _lora(c) and 0 < c.cfg.optimizer.learning_rate < 1e-5 and c.cfg.optimizer.type not in ("lion", "lion_8bit")
       and c.cfg.method.stage == "sft" else None),  # preference stages run an order lower on purpose
    _r("lion-learning-rate", "warning", "optimizer.learning_rate",
       "Lion needs a learning rate about 3-10x smaller than AdamW's (AdamW would use {adamw} here): set optimizer.learning_rate between {low} and {high} instead of {lr}.",
       "optimizers.md", "Lion", "Lion", _lion_lr),
    # --- epochs and steps
    _r("epochs-min", "error", "training.epochs",
       "training.epochs must be at least 1 (or set training.max_steps for a shorter run).",
       H, "Epochs and steps", "轮数与步数",
       lambda c: c.cfg.training.epochs < 1 and c.cfg.training.max_steps is None),
    _r("epochs-many", "warning", "training.epochs",
       "{epochs} epochs is a lot: small fine-tuning sets are usually memorised after 3-5 passes; lower training.epochs or watch the eval loss.",
       H, "Epochs and steps", "轮数与步数",
       lambda c: {"epochs": f"{c.cfg.training.epochs:g}"} if c.cfg.training.epochs > 10 else None),
    _r("max-steps-positive", "error", "training.max_steps",
       "training.max_steps must be at least 1; remove it to train for training.epochs instead.",
       H, "Epochs and steps", "轮数与步数",
       lambda c: c.cfg.training.max_steps is not None and c.cfg.training.max_steps < 1),
    _r("max-steps-overrides-epochs", "warning", "training.max_steps",
       "Both training.epochs and training.max_steps are set; max_steps wins and epochs is ignored. Remove one of them.",
       H, "Epochs and steps", "轮数与步数",
       lambda c: c.cfg.training.max_steps is not None and "epochs" in c.cfg.training.model_fields_set),
    # --- LoRA
    _r("lora-rank-min", "error", "method.lora_r",
       "method.lora_r must be at least 1; 8-64 is typical (16 is a good start).",
       "lora.md", "Rank (r)", "秩 (r)", lambda c: _lora(c) and c.cfg.method.lora_r < 1),
    _r("lora-rank-large", "warning", "method.lora_r",
       "A LoRA rank of {r} is unusually large: above 256 the adapter approaches full fine-tuning in memory without its quality; use 8-64, or full fine-tuning.",
       "lora.md", "Rank (r)", "秩 (r)",
       lambda c: {"r": c.cfg.method.lora_r} if _lora(c) and c.cfg.method.lora_r > 256 else None),
    _r("lora-alpha-positive", "error", "method.lora_alpha",
       "method.lora_alpha must be at least 1; the usual choice is alpha = r or 2 x r.",
       "lora.md", "Alpha and the alpha/rank ratio", "alpha 与 alpha/秩 比值",
       lambda c: _lora(c) and c.cfg.method.lora_alpha < 1),
    _r("lora-alpha-ratio", "warning", "method.lora_alpha",
       "lora_alpha / lora_r = {ratio} scales the adapter update by that factor; outside 0.25-4 training is either sluggish or unstable. Set lora_alpha to {suggest} (2 x r).",
       "lora.md", "Alpha and the alpha/rank ratio", "alpha 与 alpha/秩 比值",
       lambda c: {"ratio": f"{c.cfg.method.lora_alpha / c.cfg.method.lora_r:g}", "suggest": 2 * c.cfg.method.lora_r}
       if _lora(c) and c.cfg.method.lora_r >= 1 and c.cfg.method.lora_alpha >= 1
       and not 0.25 <= c.cfg.method.lora_alpha / c.cfg.method.lora_r <= 4 else None),
    _r("lora-dropout-range", "error", "method.lora_dropout",
       "method.lora_dropout must be in [0, 1); use 0.05 (or 0 for large datasets).",
       "lora.md", "Dropout", "Dropout", lambda c: not 0 <= c.cfg.method.lora_dropout < 1),
    _r("lora-dropout-high", "warning", "method.lora_dropout",
       "A LoRA dropout of {p} throws away much of each update; 0.05-0.1 is typical.",
       "lora.md", "Dropout", "Dropout",
       lambda c: {"p": c.cfg.method.lora_dropout} if 0.3 < c.cfg.method.lora_dropout < 1 else None),
    _r("target-modules-empty", "error", "method.target_modules",
       "method.target_modules is an empty list, so no adapter would be trained; use \"all-linear\" or list modules such as [\"q_proj\", \"v_proj\"].",
       "lora.md", "Target modules", "目标模块",
       lambda c: _lora(c) and isinstance(c.cfg.method.target_modules, list) and not c.cfg.method.target_modules),
    _r("lora-keys-ignored", "warning", "method.type",
       "{keys} only apply to LoRA/QLoRA and are ignored by method.type = \"{method}\"; remove them or switch to \"lora\".",
       "lora.md", "How LoRA works", "LoRA 的原理", _lora_keys_ignored),
    _r("freeze-layers-range", "error", "method.freeze_trainable_layers",
       "method.freeze_trainable_layers = {n} must be between 1 and {layers}; 2-4 of the last layers is typical.",
       "lora.md", "Freeze tuning (training the last layers)", "冻结微调 (只训练最后几层)", _freeze_layers),
    # --- preference tuning (method.stage dpo / orpo / kto)
    _r("preference-beta-positive", "error", "method.beta",
       "method.beta must be greater than 0 for method.stage = \"{stage}\"; start with 0.1.",
       P, "Beta", "Beta 参数",
       lambda c: {"stage": c.cfg.method.stage} if _preference(c) and c.cfg.method.beta <= 0 else None),
    _r("preference-beta-range", "warning", "method.beta",
       "method.beta = {beta} is outside the usual 0.01-1: a tiny beta lets the model drift far from the reference "
       "(and degrade), a large one barely moves it. 0.1 is the usual start.",
       P, "Beta", "Beta 参数",
       lambda c: {"beta": f"{c.cfg.method.beta:g}"}
       if _preference(c) and (0 < c.cfg.method.beta < 0.01 or c.cfg.method.beta > 1) else None),
    _r("preference-learning-rate-high", "warning", "optimizer.learning_rate",
       "A learning rate of {lr} is at SFT's level ({sft} for this method); {stage} starts from a model that already "
       "answers fluently and overshoots at that rate (both replies' log-probabilities collapse). Use about {suggest}, "
       "an order of magnitude below SFT.",
       P, "Learning rates", "学习率", _preference_lr_high),
    _r("preference-keys-ignored", "warning", "method.stage",
       "{keys} has no effect with method.stage = \"{stage}\" (beta is read by dpo, orpo and kto, pref_loss by "
       "dpo only); remove it or change method.stage.",
       P, "What preference tuning does", "偏好微调做什么", _preference_keys_ignored),
    _r("kto-batch-size", "error", "training.batch_size",
       "KTO estimates its KL term from the other replies in the same micro-batch, so training.batch_size must be "
       "at least 2 (4 or more is better).",
       P, "KTO", "KTO", lambda c: c.cfg.method.stage == "kto" and c.cfg.training.batch_size < 2),
    _r("preference-packing", "warning", "training.packing",
       "training.packing does not apply to method.stage = \"{stage}\": each pair is padded within its batch "
       "instead; set training.packing = false.",
       P, "Preference data formats", "偏好数据格式",
       lambda c: {"stage": c.cfg.method.stage} if _preference(c) and c.cfg.training.packing else None),
    # --- data shape
    _r("max-seq-length-min", "error", "dataset.max_seq_length",
       "dataset.max_seq_length must be at least 16 tokens; 512-2048 is typical for chat data.",
       H, "Sequence length", "序列长度", lambda c: c.cfg.dataset.max_seq_length < 16),
    _r("max-seq-length-model", "warning", "dataset.max_seq_length",
       "dataset.max_seq_length is beyond {model}'s context of {limit} tokens; positions past it were never trained. Lower it to {limit} or less.",
       H, "Sequence length", "序列长度", _seq_beyond_model),
    _r("batch-size-min", "error", "training.batch_size",
       "training.batch_size must be at least 1; raise gradient_accumulation_steps instead for a larger effective batch.",
       H, "Batch size and gradient accumulation", "批大小与梯度累积", lambda c: c.cfg.training.batch_size < 1),
    _r("gradient-accumulation-min", "error", "training.gradient_accumulation_steps",
       "training.gradient_accumulation_steps must be at least 1 (1 means no accumulation).",
       H, "Batch size and gradient accumulation", "批大小与梯度累积",
       lambda c: c.cfg.training.gradient_accumulation_steps < 1),
    _r("effective-batch-large", "warning", "training.gradient_accumulation_steps",
       "The effective batch is batch_size x gradient_accumulation_steps = {effective}; above 256 a small fine-tuning set gets only a few optimizer steps. Lower gradient_accumulation_steps.",
       H, "Batch size and gradient accumulation", "批大小与梯度累积",
       lambda c: {"effective": c.cfg.training.batch_size * c.cfg.training.gradient_accumulation_steps}
       if c.cfg.training.batch_size * c.cfg.training.gradient_accumulation_steps > 256 else None),
    _r("warmup-range", "error", "optimizer.warmup_ratio",
       "optimizer.warmup_ratio is a fraction of the total steps and must be in [0, 1); 0.03-0.1 is typical.",
       H, "Warmup and schedules", "预热与学习率调度", lambda c: not 0 <= c.cfg.optimizer.warmup_ratio < 1),
    _r("warmup-high", "warning", "optimizer.warmup_ratio",
       "A warmup of {ratio} spends {pct}% of training below the peak learning rate; 0.03-0.1 is typical.",
       H, "Warmup and schedules", "预热与学习率调度",
       lambda c: {"ratio": c.cfg.optimizer.warmup_ratio, "pct": round(100 * c.cfg.optimizer.warmup_ratio)}
       if 0.2 < c.cfg.optimizer.warmup_ratio < 1 else None),
    _r("weight-decay-range", "error", "optimizer.weight_decay",
       "optimizer.weight_decay must be 0 or more; 0-0.1 is typical.",
       H, "Weight decay", "权重衰减", lambda c: c.cfg.optimizer.weight_decay < 0),
    _r("weight-decay-high", "warning", "optimizer.weight_decay",
       "A weight decay of {wd} pulls the weights strongly towards zero; 0-0.1 is typical.",
       H, "Weight decay", "权重衰减",
       lambda c: {"wd": c.cfg.optimizer.weight_decay} if c.cfg.optimizer.weight_decay > 0.3 else None),
    _r("val-split-range", "error", "dataset.val_split",
       "dataset.val_split is the held-out fraction and must be in [0, 1); 0.05-0.1 is typical, 0 turns it off.",
       H, "Evaluation split", "验证集划分", lambda c: not 0 <= c.cfg.dataset.val_split < 1),
    _r("val-split-with-eval-path", "warning", "dataset.val_split",
       "dataset.eval_path and dataset.val_split are both set; the eval file is used and val_split is ignored. Remove one.",
       H, "Evaluation split", "验证集划分",
       lambda c: bool(c.cfg.dataset.eval_path) and c.cfg.dataset.val_split > 0),
    _r("packing-with-eval", "warning", "training.packing",
       "Packing with evaluation: packed evaluation sequences mix examples, so eval loss is not comparable between runs with and without packing; turn training.packing off for runs you compare, or evaluate unpacked.",
       H, "Packing", "打包 (packing)", lambda c: c.cfg.training.packing and _has_eval(c)),
    # --- environment: CUDA, bitsandbytes, precision
    _r("qlora-needs-cuda", "error", "method.type",
       "QLoRA needs an NVIDIA GPU with CUDA, and {where} has none; use method.type = \"lora\" (same adapters on a 16-bit base) here, or set hardware.gpu to the GPU you will train on.",
       "qlora.md", "Requirements: CUDA and bitsandbytes", "前提: CUDA 与 bitsandbytes",
       lambda c: {"where": c.env.description} if c.cfg.method.type == "qlora" and not c.env.has_cuda else None),
    _r("qlora-needs-bitsandbytes", "error", "method.type",
       "QLoRA loads the base model in 4-bit with bitsandbytes, which is not installed on {where}: run `pip install bitsandbytes`, or use method.type = \"lora\".",
       "qlora.md", "Requirements: CUDA and bitsandbytes", "前提: CUDA 与 bitsandbytes",
       lambda c: {"where": c.env.description}
       if c.cfg.method.type == "qlora" and c.env.has_cuda and not c.env.has_bitsandbytes else None),
    _r("optimizer-8bit-needs-cuda", "error", "optimizer.type",
       "optimizer.type = \"{opt}\" is a bitsandbytes CUDA optimizer and {where} has no CUDA GPU; use optimizer.type = \"{alt}\" instead.",
       "optimizers.md", "8-bit and paged optimizers", "8-bit 与分页优化器",
       lambda c: {"opt": c.cfg.optimizer.type, "alt": BNB_OPTIMIZERS[c.cfg.optimizer.type], "where": c.env.description}
       if c.cfg.optimizer.type in BNB_OPTIMIZERS and not c.env.has_cuda else None),
    _r("optimizer-8bit-needs-bitsandbytes", "error", "optimizer.type",
       "optimizer.type = \"{opt}\" needs bitsandbytes, which is not installed on {where}: run `pip install bitsandbytes` or use optimizer.type = \"{alt}\".",
       "optimizers.md", "8-bit and paged optimizers", "8-bit 与分页优化器",
       lambda c: {"opt": c.cfg.optimizer.type, "alt": BNB_OPTIMIZERS[c.cfg.optimizer.type], "where": c.env.description}
       if c.cfg.optimizer.type in BNB_OPTIMIZERS and c.env.has_cuda and not c.env.has_bitsandbytes else None),
    _r("device-unavailable", "error", "training.device",
       "training.device = \"{device}\" but {where} does not have it; use training.device = \"auto\".",
       H, "Device and precision", "设备与精度", _device_unavailable),
    _r("bf16-unsupported", "error", "model.dtype",
       "model.dtype = \"bfloat16\" but {where} has no bf16 support (pre-Ampere GPUs such as T4 and V100); use model.dtype = \"float16\" or \"auto\".",
       H, "Device and precision", "设备与精度", _bf16_unsupported),
    _r("fp16-on-cpu", "warning", "model.dtype",
       "model.dtype = \"float16\" on a CPU is slow and numerically fragile for training; use \"auto\" (bfloat16 where the CPU supports it, else float32).",
       H, "Device and precision", "设备与精度",
       lambda c: c.cfg.model.dtype == "float16" and c.device == "cpu"),
    # --- memory
    _r("memory-exceeds-device", "warning", "training.batch_size",
       "Estimated peak memory {total} GB exceeds the {memory} GB available (largest batch that fits: {batch}); lower training.batch_size, dataset.max_seq_length, turn on gradient_checkpointing, or use QLoRA / an 8-bit optimizer.",
       "memory.md", "When it does not fit", "显存不够时怎么办", _memory_exceeds),
    _r("gradient-checkpointing-advised", "warning", "training.gradient_checkpointing",
       "Estimated memory {total} GB is {share}% of the {memory} GB available; set training.gradient_checkpointing = true to keep only layer inputs (about 20-30% slower, much smaller activations).",
       "memory.md", "Gradient checkpointing", "梯度检查点", _checkpointing_tight),
    _r("gpu-unknown", "warning", "hardware.gpu",
       "hardware.gpu = \"{gpu}\" is not in the GPU catalog, so device memory is unknown; set hardware.device_memory_gb, or use a name such as \"RTX 4090\" or \"A100 80G\".",
       "memory.md", "GPU memory table", "常见 GPU 显存", _gpu_unknown),
    _r("model-dims-unknown", "warning", "model.base_model",
       "The memory estimate needs the model's dimensions: {model} is neither a local folder with config.json nor a known family; pass a local folder.",
       "memory.md", "What takes memory during training", "训练时显存花在哪里",
       lambda c: {"model": c.cfg.model.base_model} if c.dims is None else None),
    # --- model code
    _r("trust-remote-code", "warning", "model.trust_remote_code",
       "model.trust_remote_code = true runs Python code shipped with the model folder; keep it only for a model whose code you have read or trust.",
       H, "Remote code", "远程代码", lambda c: c.cfg.model.trust_remote_code),
    _r("remote-code-required", "error", "model.trust_remote_code",
       "{model} ships its own model code; set model.trust_remote_code = true (after reviewing that code) or it will not load.",
       H, "Remote code", "远程代码", _remote_code_required),
    # --- sampling and saving
    _r("sampling-without-prompts", "error", "sampling.prompts",
       "sampling.every_n_steps is set but sampling.prompts is empty; add prompts or set every_n_steps = 0.",
       H, "Sampling during training", "训练中采样",
       lambda c: c.cfg.sampling.every_n_steps > 0 and not c.cfg.sampling.prompts),
    _r("sampling-steps-negative", "error", "sampling.every_n_steps",
       "sampling.every_n_steps must be 0 (off) or a positive number of steps.",
       H, "Sampling during training", "训练中采样", lambda c: c.cfg.sampling.every_n_steps < 0),
    _r("save-every-min", "error", "saving.save_every_n_steps",
       "saving.save_every_n_steps must be at least 1; 50-500 is typical.",
       H, "Checkpoints and output folders", "检查点与输出目录", lambda c: c.cfg.saving.save_every_n_steps < 1),
    _r("save-total-limit-min", "error", "saving.save_total_limit",
       "saving.save_total_limit must be at least 1 (the last checkpoint is needed to resume).",
       H, "Checkpoints and output folders", "检查点与输出目录", lambda c: c.cfg.saving.save_total_limit < 1),
    _r("suffix-format", "error", "saving.suffix",
       "saving.suffix goes into the model id ft:<base>:<suffix>:<job-id>; use 1-40 letters, digits, '-', '_' or '.'.",
       H, "Checkpoints and output folders", "检查点与输出目录",
       lambda c: c.cfg.saving.suffix is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", c.cfg.saving.suffix)),
    _r("merge-qlora-adapter", "warning", "saving.merge_after_training",
       "Merging a QLoRA adapter reloads the base in 16-bit (about 2 bytes per parameter of memory) and merges there, not into the 4-bit weights; make sure that fits, or keep the adapter unmerged.",
       "qlora.md", "Merging a QLoRA adapter", "合并 QLoRA 适配器",
       lambda c: c.cfg.saving.merge_after_training and c.cfg.method.type == "qlora"),
    # --- launch only: the filesystem
    _r("dataset-missing", "error", "dataset.path",
       "The training file {path} does not exist; set dataset.path to a JSON, JSONL or CSV file.",
       H, "Datasets before launch", "启动前检查数据", _dataset_missing, launch_only=True),
    _r("dataset-format-undetectable", "error", "dataset.format",
       "The rows of {path} do not match a format ({found}); use chat {{\"messages\": [...]}}, alpaca {{\"instruction\", \"output\"}}, sharegpt {{\"conversations\"}}, {{\"prompt\", \"completion\"}} or {{\"text\"}} rows, or set dataset.format.",
       H, "Datasets before launch", "启动前检查数据", _format_undetectable, launch_only=True),
    _r("preference-data-kind", "error", "method.stage",
       "{path} is {what}, which method.stage = \"{stage}\" cannot train on; set {fix}.",
       P, "Preference data formats", "偏好数据格式", _preference_data_kind, launch_only=True),
    _r("eval-path-missing", "error", "dataset.eval_path",
       "The evaluation file {path} does not exist; fix dataset.eval_path or remove it.",
       H, "Datasets before launch", "启动前检查数据", _eval_missing, launch_only=True),
    _r("output-dir-not-writable", "error", "saving.output_dir",
       "saving.output_dir {path} cannot be created ({parent} is not a writable folder); choose a folder you can write to, or leave it empty.",
       H, "Checkpoints and output folders", "检查点与输出目录", _output_not_writable, launch_only=True),
    _r("output-dir-not-empty", "error", "saving.output_dir",
       "saving.output_dir {path} already holds {what}; training would overwrite it. Choose a new folder, leave it empty, or overwrite on purpose (--overwrite).",
       H, "Checkpoints and output folders", "检查点与输出目录", _output_clobbers, launch_only=True),
    _r("base-model-unavailable", "error", "model.base_model",
       "The base model {model} cannot be loaded here ({why}); use gemma-3-270m, a local transformers folder, or a registered name.",
       H, "Datasets before launch", "启动前检查数据", _base_model_missing, launch_only=True),
]

# ---------------------------------------------------------------- running the rules

def target_environment(cfg: TrainConfig, machine: Environment, for_launch: bool) -> Environment:
    """The GPU named in hardware.gpu (when planning), otherwise the machine."""
    if for_launch:
        return machine
    from trainer.planning.hardware import lookup_gpu

    gpu = lookup_gpu(cfg.hardware.gpu)
    return Environment.for_gpu(gpu) if gpu is not None else machine


def _finding(rule: Rule, result: Any, lang: str = "en") -> Finding:
    values = result if isinstance(result, dict) else {}
    try:
        message = rule.message.format(**values)
    except (KeyError, IndexError):
        message = rule.message
    return Finding(rule.id, rule.severity, rule.field, message, *rule.citation(lang))


def validate(cfg: TrainConfig, for_launch: bool = False, env: Environment | None = None,
             rules: list[Rule] | None = None, overwrite: bool = False, lang: str = "en") -> ValidationReport:
    """Run every rule on `cfg` and collect all findings (errors and warnings) in one pass.

    `env` replaces the probe of this machine (tests); `overwrite=True` means the caller will clear
    `saving.output_dir` on purpose, so a used output folder is not an error. `lang="zh"` cites
    the Chinese docs (`zh/<doc>` and its heading) for Chinese readers.
    """
    ctx = Context(cfg, target_environment(cfg, env or Environment.detect(), for_launch), for_launch, overwrite)
    report = ValidationReport()
    for rule in rules or RULES:
        if rule.launch_only and not for_launch:
            continue
        result = rule.check(ctx)
        if not result:
            continue
        finding = _finding(rule, result, lang)
        (report.errors if rule.severity == "error" else report.warnings).append(finding)
    return report
