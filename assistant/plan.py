"""Plan: the fields a conversation stated -> a whole config, every default with its reason.

The second of the planner's steps (`assistant.understand` -> plan -> `assistant.fit`). Values the
user gave are written as given (invalid ones too: validation flags them). Everything else is a
default, and each default says why, citing the doc passage it follows:

- the target: a named GPU (the catalogue's memory and features), "a 16 GB GPU" (an unnamed CUDA
  card of that size), or this machine. Validation and the estimate judge the config against the
  target, not against the machine the planner runs on;
- from the data, when the dataset file exists: OpenAI-style heuristics on the real row count
  (4 epochs, an effective batch of 0.2% of the examples capped at 256, a learning rate scaled with
  the batch: `trainer.planning.presets`), and max_seq_length from the 95th percentile of the
  examples' token lengths;
- per method and optimizer: the usual peak learning rate (Lion about a third of AdamW's), and
  QLoRA's 8-bit paged optimizer only where the target has CUDA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from trainer.models.device import Environment
from trainer.planning import presets
from trainer.planning.rules import TYPICAL_ADAMW_LR

METHODS = ("lora", "qlora", "full", "freeze")
BNB_OPTIMIZERS = ("adamw_8bit", "paged_adamw_8bit", "lion", "lion_8bit")
# Planner-only fields: they shape the config but are not config keys.
PSEUDO_FIELDS = ("model.size", "training.effective_batch", "hardware.gpu_count")
LENGTH_STEP = 128  # max_seq_length from the data is rounded up to a multiple of this
LENGTH_CAP = 32768  # longest length read from the data when the model's own limit is unknown

H = "en/hyperparameters.md"


@dataclass
class Target:
    """Where the run is planned for."""

    env: Environment
    label: str
    kind: str  # "gpu" (named), "gpu-memory" (a CUDA card of a given size), "machine"
    memory_gb: float | None = None

    @property
    def is_machine(self) -> bool:
        return self.kind == "machine"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "label": self.label, "memory_gb": self.memory_gb, "cuda": self.env.has_cuda}


@dataclass
class DataFacts:
    path: str
    exists: bool
    rows: int | None = None
    p95_tokens: int | None = None
    counted_with: str = ""
    problem: str = ""


@dataclass
class Plan:
    data: dict  # config data (sections -> keys), ready for check_config
    target: Target
    user_fields: set[str]
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (reason, doc source)
    facts: DataFacts | None = None
    proxy_model: str | None = None  # the catalogue model sized in for "a 3B model"
    missing: list[str] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)  # warnings about the request (finding dicts)
    n_examples: int | None = None


# ---------------------------------------------------------------- target

def generic_gpu(memory_gb: float, label: str = "") -> Environment:
    """An unnamed CUDA GPU of `memory_gb` ("my 16 GB GPU"): bf16, bitsandbytes installable."""
    return Environment(has_cuda=True, has_bitsandbytes=True, cuda_bf16=True, cuda_memory_gb=float(memory_gb),
                       description=f"the target GPU ({label or f'{memory_gb:g} GB'})")


def target_for(values: dict) -> Target:
    from trainer.planning.hardware import lookup_gpu

    memory = values.get("hardware.device_memory_gb")
    memory = float(memory) if isinstance(memory, (int, float)) and memory > 0 else None
    device = values.get("training.device")
    gpu = lookup_gpu(values["hardware.gpu"]) if values.get("hardware.gpu") else None
    if gpu is not None:
        env = Environment.for_gpu(gpu)
        return Target(env, f"{gpu.name} ({memory or gpu.memory_gb:g} GB)", "gpu", memory or gpu.memory_gb)
    if memory is not None and device not in ("cpu", "mps"):
        label = values.get("hardware.gpu") or f"{memory:g} GB GPU"
        return Target(generic_gpu(memory, label), f"a {memory:g} GB CUDA GPU", "gpu-memory", memory)
    return this_machine()


def this_machine() -> Target:
    from trainer.models.device import memory_gb, pick_device

    env = Environment.detect()
    device = pick_device("auto", env)
    memory = memory_gb(device, env)
    what = f"{env.cuda_memory_gb:g} GB CUDA GPU" if device == "cuda" else f"{device.upper()}, {memory:g} GB RAM"
    return Target(env, f"this machine ({what})", "machine", memory)


# ---------------------------------------------------------------- data

def data_facts(path: str, base_model: str, max_positions: int | None) -> DataFacts:
    """Row count and p95 token length of the training file, when it exists and can be read."""
    import statistics

    from trainer.data.formats import load_examples
    from trainer.planning.memory_data import profile_dataset
    from tunepilot.core.errors import UserError

    p = Path(path).expanduser()
    if not p.is_file():
        return DataFacts(path, exists=False)
    facts = DataFacts(path, exists=True)
    try:
        facts.rows = len(load_examples(p, skip_bad_rows=True))
    except (UserError, OSError, ValueError) as exc:
        facts.problem = str(exc).splitlines()[0]
        return facts
    profile = profile_dataset(str(p), "auto", base_model, min(max_positions or LENGTH_CAP, LENGTH_CAP))
    if profile is not None and profile.examples:
        lengths = sorted(e.length for e in profile.examples)
        p95 = lengths[-1] if len(lengths) < 20 else statistics.quantiles(lengths, n=20, method="inclusive")[-1]
        facts.p95_tokens = int(p95)
        facts.counted_with = "the model's tokenizer" if profile.method == "tokenizer" else "a characters-per-token rule"
    return facts


def rounded_length(tokens: int, limit: int | None) -> int:
    length = max(LENGTH_STEP, math.ceil(tokens / LENGTH_STEP) * LENGTH_STEP)
    return min(length, limit) if limit else length


# ---------------------------------------------------------------- learning rates

def lion_rate(adamw: float) -> float:
    """About a third of AdamW's rate, rounded down to two significant digits (inside the rule's 3-10x)."""
    raw = adamw / 3
    digits = math.floor(math.log10(raw)) - 1
    return round(math.floor(raw / 10 ** digits) * 10 ** digits, -digits + 1)


def _round_rate(value: float) -> float:
    return float(f"{value:.3g}")


# ---------------------------------------------------------------- the plan

def _set(data: dict, dotted: str, value) -> None:
    section, key = dotted.split(".", 1)
    data.setdefault(section, {})[key] = value


def _get(data: dict, dotted: str):
    section, key = dotted.split(".", 1)
    return data.get(section, {}).get(key)


def plan(values: dict, *, openai_style: bool = False) -> Plan:
    """A config for `values` (field -> value as understood), with a reason for every default."""
    from trainer.models.catalog import lookup

    method = values.get("method.type") if values.get("method.type") in METHODS else "lora"
    base = presets.preset(method)
    data = base.to_dict()
    target = target_for(values)
    result = Plan(data=data, target=target, user_fields=set(values))

    for dotted, value in values.items():
        if dotted not in PSEUDO_FIELDS:
            _set(data, dotted, value)

    # The model: as given; a size alone is planned with a catalogue model of that size, and asked for.
    if "model.base_model" not in values:
        if "model.size" in values:
            proxy = proxy_for_size(values["model.size"])
            _set(data, "model.base_model", "")
            result.proxy_model = proxy
            result.missing.append("model.base_model")
            result.reasons["model.base_model"] = (
                f"no model named, only a size ({_params(values['model.size'])}): the memory is planned with the shape of "
                f"{proxy}; name the model to plan exactly.", "en/memory.md")
        else:
            result.reasons["model.base_model"] = (
                "default: the built-in gemma-3-270m runs on a laptop CPU; name another model to change it.", "default")
    if isinstance(values.get("hardware.gpu_count"), int) and values["hardware.gpu_count"] > 1:
        result.notes.append(_note("request.multi-gpu", "hardware.gpu",
                                  f"You named {values['hardware.gpu_count']} GPUs: the plan and its memory estimate are per GPU "
                                  "(data parallel: each GPU holds a whole copy); see the README's multi-GPU launch.", "en/memory.md"))
    model_name = result.proxy_model or _get(data, "model.base_model") or ""
    dims = lookup(model_name) if model_name else None

    # The target device: "a 16 GB GPU" means CUDA even though this machine may have none.
    if target.kind == "gpu-memory" and "training.device" not in values:
        _set(data, "training.device", "cuda")
        result.reasons["training.device"] = (f"you named a GPU ({target.label}): the run is planned for CUDA.", H)

    # The data: row count and token lengths, when the file is here.
    path = values.get("dataset.path") or ""
    n_examples = None
    if path:
        facts = data_facts(str(path), model_name or "gemma-3-270m", dims.max_position_embeddings if dims else None)
        result.facts = facts
        n_examples = facts.rows
        if not facts.exists:
            result.notes.append(_note("request.dataset-not-found", "dataset.path",
                                      f"The dataset {path} does not exist on this machine; the plan uses defaults instead of its "
                                      "row count and lengths. Launching needs the file (the run may be meant for another machine)."))
        elif facts.problem:
            result.notes.append(_note("request.dataset-unreadable", "dataset.path",
                                      f"The dataset {path} could not be read for planning ({facts.problem})."))
    else:
        result.missing.append("dataset.path")
    result.n_examples = n_examples

    if n_examples or openai_style:
        _plan_schedule(data, values, method, n_examples, openai_style, result)
    elif isinstance(values.get("training.effective_batch"), int):
        _plan_batch(data, values, values["training.effective_batch"], result)
    if (_get(data, "model.dtype") == "bfloat16" and "model.dtype" not in values and target.env.has_cuda
            and not target.env.cuda_bf16):
        _set(data, "model.dtype", "auto")  # QLoRA's preset computes in bf16, which this GPU lacks: auto picks fp16
    _plan_optimizer(data, values, method, target, result)
    _plan_length(data, values, dims, result)

    if "method.lora_r" in values and "method.lora_alpha" not in values and isinstance(values["method.lora_r"], int) \
            and method in ("lora", "qlora"):
        _set(data, "method.lora_alpha", 2 * values["method.lora_r"])
        result.reasons["method.lora_alpha"] = (
            f"alpha = 2 x r = {2 * values['method.lora_r']}: keeps the update scale alpha/r = 2 for the rank you chose.", "en/lora.md")
    return result


def proxy_for_size(params: int) -> str:
    """The catalogue model whose parameter count is nearest to `params` (dense decoder families)."""
    from trainer.models.catalog import FAMILIES

    candidates = [d for (family, _), d in FAMILIES.items() if family in ("qwen2.5", "llama3", "llama2", "mistral", "qwen3")]
    best = min(candidates, key=lambda d: abs(math.log(d.total_params) - math.log(max(params, 1))))
    return best.name


def _params(n: int) -> str:
    return f"{n / 1e9:g}B" if n >= 1e9 else f"{n / 1e6:g}M"


def _plan_schedule(data: dict, values: dict, method: str, n: int | None, openai_style: bool, result: Plan) -> None:
    """Epochs, batch and learning rate: OpenAI-style from the row count when the data is here."""
    typical = TYPICAL_ADAMW_LR.get(method, TYPICAL_ADAMW_LR["lora"])
    from_data = bool(n)
    if "training.epochs" not in values:
        _set(data, "training.epochs", 4)
        why = f"{n} examples in the dataset" if from_data else "OpenAI-style defaults asked for"
        result.reasons["training.epochs"] = (f"OpenAI-style: 4 epochs ({why}), the default OpenAI's fine-tuning API started with.", H)
    effective = presets.openai_batch_size(n)
    if "training.effective_batch" in values and isinstance(values["training.effective_batch"], int):
        effective = values["training.effective_batch"]
    elif not ({"training.batch_size", "training.gradient_accumulation_steps"} & set(values)):
        if from_data:
            result.reasons["training.batch_size"] = (
                f"OpenAI-style: 0.2% of {n} examples = {0.002 * n:g}, rounded and clamped to [1, 256] -> an effective batch of {effective}.", H)
        else:
            result.reasons["training.batch_size"] = ("OpenAI-style: an effective batch of 4 until the dataset's row count is known.", H)
    _plan_batch(data, values, effective, result)
    if "optimizer.learning_rate" not in values:
        mult = presets.openai_lr_multiplier(effective)
        rate = _round_rate(typical * mult / 0.1)
        _set(data, "optimizer.learning_rate", rate)
        _set(data, "optimizer.lr_scheduler", values.get("optimizer.lr_scheduler", "linear"))
        result.reasons["optimizer.learning_rate"] = (
            f"OpenAI-style: effective batch {effective} -> learning-rate multiplier {mult} (0.05 up to batch 4, 0.1 up to 32, "
            f"0.2 above), applied to {method}'s usual rate: {typical:g} x {mult}/0.1 = {rate:g}.", H)


def _plan_batch(data: dict, values: dict, effective: int, result: Plan) -> None:
    if "training.batch_size" in values and "training.gradient_accumulation_steps" in values:
        return
    if "training.batch_size" in values:
        batch = values["training.batch_size"]
        if isinstance(batch, int) and batch > 0 and "training.effective_batch" in values:
            _set(data, "training.gradient_accumulation_steps", max(1, math.ceil(effective / batch)))
        return
    if "training.gradient_accumulation_steps" in values:
        accum = values["training.gradient_accumulation_steps"]
        if isinstance(accum, int) and accum > 0 and "training.effective_batch" in values:
            _set(data, "training.batch_size", max(1, effective // accum))
        return
    if effective < 1:
        return  # nothing to split; the preset's batch stays
    batch, accum = presets.split_batch(effective)
    _set(data, "training.batch_size", batch)
    _set(data, "training.gradient_accumulation_steps", accum)
    if "training.effective_batch" in values:
        result.reasons["training.batch_size"] = (
            f"your effective batch {effective} = {batch} per step x {accum} accumulation steps.", H)


def _plan_optimizer(data: dict, values: dict, method: str, target: Target, result: Plan) -> None:
    optimizer = values.get("optimizer.type") or _get(data, "optimizer.type")
    if "optimizer.type" not in values and optimizer in BNB_OPTIMIZERS and not target.env.has_cuda:
        _set(data, "optimizer.type", "adamw")
        optimizer = "adamw"
        result.reasons["optimizer.type"] = (
            f"AdamW: 8-bit optimizers need CUDA and {target.label} has none.", "en/optimizers.md")
    elif "optimizer.type" not in values and method == "qlora":
        result.reasons["optimizer.type"] = (
            "paged 8-bit AdamW, QLoRA's usual partner: 2 bytes of state per trainable parameter, spills to CPU memory on spikes "
            f"(the target, {target.label}, has CUDA).", "en/optimizers.md")
    if optimizer in ("lion", "lion_8bit") and "optimizer.learning_rate" not in values:
        adamw = _get(data, "optimizer.learning_rate") or TYPICAL_ADAMW_LR.get(method, 2e-4)
        rate = lion_rate(adamw)
        _set(data, "optimizer.learning_rate", rate)
        result.reasons["optimizer.learning_rate"] = (
            f"Lion takes about a third of AdamW's rate: AdamW would use {adamw:g} here, so {rate:g}.", "en/optimizers.md")


def _plan_length(data: dict, values: dict, dims, result: Plan) -> None:
    if "dataset.max_seq_length" in values:
        return
    facts = result.facts
    limit = dims.max_position_embeddings if dims else None
    if facts and facts.p95_tokens:
        length = rounded_length(facts.p95_tokens, limit)
        _set(data, "dataset.max_seq_length", length)
        result.reasons["dataset.max_seq_length"] = (
            f"95% of the examples are at most {facts.p95_tokens} tokens (counted with {facts.counted_with}); rounded up to "
            f"{length}, so almost nothing is cut and no memory goes to padding beyond that.", H)


def _note(rule_id: str, field_name: str, message: str, source: str = "request") -> dict:
    return {"rule_id": rule_id, "severity": "warning", "field": field_name, "message": message, "source": source, "heading": ""}


__all__ = ["DataFacts", "Plan", "Target", "data_facts", "generic_gpu", "lion_rate", "plan", "proxy_for_size",
           "rounded_length", "target_for", "this_machine"]
