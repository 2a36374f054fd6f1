"""Config from conversation: "fine-tune X on my data with LoRA on a 24G card" -> a validated config.

`config_from_text(text)` returns exactly the `tunepilot config --from-text --json` shape:
`{"config", "validation": {"errors", "warnings"}, "memory_estimate", "explanations"}`.

How it is built:
1. slots are read from the request: with an LLM engine by structured output first (a pydantic
   schema through LangChain), checked the same way as the deterministic result, retried once with
   the problems spelled out, and otherwise (or with no LLM) by the deterministic parser in
   `assistant.slots`;
2. a preset is the starting point (the request's method, or `openai-style` when it asks for
   OpenAI-style defaults), so every slot the request leaves out gets a default with its reason;
3. the slots are written over the preset and the result goes through the same parsing, rules and
   memory estimate as a config file (`trainer.planning.config_io`, `trainer.planning.rules`, `trainer.planning.memory`);
4. requests that contradict themselves ("QLoRA full fine-tune") get a validation error that asks
   which one was meant.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from assistant.slots import Slots, canonical_model, parse_slots
from tunepilot.core.errors import UserError
from tunepilot.core.language import detect_lang

# slot -> (section, key) in TrainConfig
SLOT_FIELDS = {
    "base_model": ("model", "base_model"),
    "method": ("method", "type"),
    "dataset_path": ("dataset", "path"),
    "eval_path": ("dataset", "eval_path"),
    "max_seq_length": ("dataset", "max_seq_length"),
    "output_dir": ("saving", "output_dir"),
    "epochs": ("training", "epochs"),
    "batch_size": ("training", "batch_size"),
    "gradient_accumulation_steps": ("training", "gradient_accumulation_steps"),
    "device": ("training", "device"),
    "learning_rate": ("optimizer", "learning_rate"),
    "optimizer": ("optimizer", "type"),
    "lora_r": ("method", "lora_r"),
    "lora_alpha": ("method", "lora_alpha"),
    "gpu": ("hardware", "gpu"),
    "device_memory_gb": ("hardware", "device_memory_gb"),
}

METHOD_NAMES = {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning", "freeze": "freeze tuning"}
METHOD_NAMES_ZH = {"lora": "LoRA", "qlora": "QLoRA", "full": "全量微调", "freeze": "冻结微调"}


class RequestSlots(BaseModel):
    """What an LLM fills from a request (structured output); every field is optional."""

    base_model: str | None = Field(None, description="Base model name with size as written, or a local path.")
    method: str | None = Field(None, description="lora, qlora, full or freeze.")
    methods_mentioned: list[str] = Field(default_factory=list, description="Every method the request names.")
    dataset_path: str | None = Field(None, description="Training data file path.")
    eval_path: str | None = Field(None, description="Evaluation data file path.")
    output_dir: str | None = Field(None, description="Where to save the result.")
    epochs: float | None = Field(None, description="Number of epochs.")
    learning_rate: float | None = Field(None, description="Peak learning rate as a number.")
    batch_size: int | None = Field(None, description="Per-device batch size.")
    gradient_accumulation_steps: int | None = Field(None, description="Gradient accumulation steps.")
    lora_r: int | None = Field(None, description="LoRA rank.")
    lora_alpha: int | None = Field(None, description="LoRA alpha.")
    max_seq_length: int | None = Field(None, description="Maximum sequence length in tokens.")
    optimizer: str | None = Field(None, description="adamw, adamw_8bit, paged_adamw_8bit, lion, lion_8bit, adafactor or sgd.")
    gpu: str | None = Field(None, description='GPU name such as "RTX 4090" or "A100-80G".')
    device_memory_gb: float | None = Field(None, description="GPU memory in GB.")
    device: str | None = Field(None, description="auto, cpu, cuda or mps.")
    openai_style_defaults: bool = Field(False, description="True when the request asks for OpenAI-style defaults.")


# ------------------------------------------------------------------------------- intent

_TRAIN_VERB = re.compile(r"fine[\s-]?tun\w*|finetun\w*|(?<![a-z])train(?:ing)?(?![a-z])|(?<![a-z])sft(?![a-z])|微调|训练|精调|调优", re.I)
_REQUEST = re.compile(
    r"(?:^|\W)(i want|i'd like|i would like|i need|help me|let's|let me|please|can you|could you|set up|create|make|"
    r"give me|generate|build|prepare|start|launch|run|write)\b|^\s*(fine[\s-]?tune|finetune|train|sft)\b|"
    r"(帮我|我想|我要|请|给我|准备|开始|打算|需要|想要|生成|来个|做一个|用\s*\S{0,20}\s*(?:微调|训练))|^\s*(微调|训练)",
    re.I,
)
_QUESTION = re.compile(r"^\s*(what|how|why|which|when|where|is|are|does|do|should|can)\b|是什么|为什么|怎么|如何|吗[？?]?\s*$|什么是|哪个", re.I)
_CONCRETE = ("dataset_path", "base_model", "epochs", "learning_rate", "gpu", "device_memory_gb", "batch_size", "output_dir")


def detect_training_intent(text: str) -> bool:
    """Does `text` ask for a training run/config (rather than ask a question about fine-tuning)?"""
    if not text or not _TRAIN_VERB.search(text):
        return False
    slots = parse_slots(text)
    concrete = sum(1 for name in _CONCRETE if name in slots.values)
    if "dataset_path" in slots.values or concrete >= 2:
        return True
    if _QUESTION.search(text):
        return False
    return bool(_REQUEST.search(text)) or concrete >= 1


# ------------------------------------------------------------------------------- slots -> config

def _count_examples(path: str) -> int | None:
    """Lines of a local JSONL/CSV data file (CSV minus its header); None when it cannot be read."""
    p = Path(path).expanduser()
    if not p.is_file() or p.suffix.lower() not in (".jsonl", ".csv"):
        return None
    try:
        with p.open(encoding="utf-8", errors="replace") as fh:
            lines = sum(1 for line in fh if line.strip())
    except OSError:
        return None
    return max(0, lines - (1 if p.suffix.lower() == ".csv" else 0)) or None


def _config_data(slots: Slots) -> tuple[dict, str, int | None]:
    """Preset config data with the slots written over it; also the preset name and example count."""
    from trainer.planning import presets

    values = slots.values
    n_examples = _count_examples(values["dataset_path"]) if values.get("dataset_path") else None
    method = values.get("method") if values.get("method") in presets.PRESETS else "lora"
    # An unknown method still goes into the config below, so parsing reports it with the allowed values.
    preset_name = "openai-style" if values.get("openai_style") else method
    data = presets.preset(preset_name, n_examples=n_examples).to_dict()
    if preset_name == "openai-style" and values.get("method") in ("qlora", "full", "freeze"):
        # OpenAI-style batch/epochs/lr schedule, on the method the request names.
        method_defaults = presets.preset(values["method"]).to_dict()
        data["method"] = method_defaults["method"]
        data["optimizer"]["type"] = method_defaults["optimizer"]["type"]
    for slot, (section, key) in SLOT_FIELDS.items():
        if slot in values:
            data.setdefault(section, {})[key] = values[slot]
    if "lora_r" in values and "lora_alpha" not in values:
        data["method"]["lora_alpha"] = 2 * values["lora_r"]  # keep the preset's alpha/r = 2 ratio
    if "gpu" in values and "device_memory_gb" not in values:
        data["hardware"].pop("device_memory_gb", None)
    return data, preset_name, n_examples


def _conflict_finding(slots: Slots, lang: str) -> dict | None:
    mentioned = [m for m in slots.methods_mentioned if m in METHOD_NAMES]
    if "qlora" in mentioned and "lora" in mentioned:
        mentioned.remove("lora")
    if len(mentioned) < 2:
        return None
    if lang == "zh":
        names = "、".join(METHOD_NAMES_ZH[m] for m in mentioned)
        message = f"请求中同时提到了 {names}，它们互相排斥：你想用哪一种？请只保留一种方法再试。"
    else:
        names = " and ".join(METHOD_NAMES[m] for m in mentioned)
        message = f"The request asks for both {names}, which exclude each other: which one do you want? Name only one method and try again."
    return {"rule_id": "request.conflicting-methods", "severity": "error", "field": "method.type", "message": message,
            "source": "en/qlora.md" if "qlora" in mentioned else "en/lora.md", "heading": "Choosing a method"}


def _memory(cfg) -> dict:
    from trainer.planning.memory import EstimateError, estimate

    try:
        return estimate(cfg).to_dict()
    except EstimateError as exc:
        return {"total_gb": None, "breakdown": {}, "device_memory_gb": cfg.hardware.device_memory_gb,
                "fits": None, "max_batch_size": None, "error": str(exc)}


def _explanations(cfg, slots: Slots, n_examples: int | None, preset_name: str, origin: str) -> list[dict]:
    from trainer.planning.presets import explain

    from_request = {f"{sec}.{key}": slot for slot, (sec, key) in SLOT_FIELDS.items() if slot in slots.values}
    out = []
    for item in explain(cfg, n_examples=n_examples):
        entry = {"field": item["field"], "value": item["value"], "reason": item["reason"], "source": item.get("source", "")}
        slot = from_request.pop(item["field"], None)
        if slot is not None:
            entry["reason"] = f'{origin}: "{slots.evidence.get(slot, slots.values[slot])}". {item["reason"]}'
            entry["source"] = "request"
        else:
            entry["reason"] = f"default of the {preset_name} preset. {item['reason']}"
        out.append(entry)
    section_value = cfg.to_dict()
    for field, slot in from_request.items():  # slots that explain() has no entry for
        sec, key = field.split(".")
        out.append({"field": field, "value": section_value.get(sec, {}).get(key, slots.values[slot]),
                    "reason": f'{origin}: "{slots.evidence.get(slot, slots.values[slot])}".', "source": "request"})
    if "model.base_model" not in {e["field"] for e in out}:
        out.insert(0, {"field": "model.base_model", "value": cfg.model.base_model,
                       "reason": "default: the built-in gemma-3-270m runs on a laptop CPU; name another model to change it.",
                       "source": "default"})
    return out


def build_result(slots: Slots, text: str, origin: str = "from your request", notes: list[dict] | None = None) -> dict:
    """Slots -> the `config --from-text --json` dict (config, validation, memory estimate, explanations)."""
    from trainer.planning.findings import check_config

    lang = detect_lang(text)
    data, preset_name, n_examples = _config_data(slots)
    # Schema problems (as the request's own findings) and rule findings; Chinese requests cite the Chinese docs.
    checked = check_config(data, origin="request", lang=lang)
    cfg = checked.config
    validation = checked.to_dict()
    conflict = _conflict_finding(slots, lang)
    if conflict:
        validation["errors"].insert(0, conflict)
    validation["warnings"] = list(notes or []) + validation["warnings"]
    return {
        "config": cfg.to_dict(),
        "validation": {"errors": validation["errors"], "warnings": validation["warnings"]},
        "memory_estimate": _memory(cfg),
        "explanations": _explanations(cfg, slots, n_examples, preset_name, origin),
    }


# ------------------------------------------------------------------------------- LLM extraction

def slots_from_model(filled: RequestSlots, text: str) -> Slots:
    """An LLM's structured output -> Slots, normalised like the deterministic parser's."""
    slots = Slots()
    data = filled.model_dump()
    if data.get("base_model"):
        parsed = parse_slots(data["base_model"]).values.get("base_model")
        slots.set("base_model", parsed or data["base_model"].strip(), data["base_model"])
    for name in ("method", "optimizer"):
        if data.get(name):
            slots.set(name, str(data[name]).strip().lower().replace("-", "_").replace("paged_adamw8bit", "paged_adamw_8bit")
                      .replace("adamw8bit", "adamw_8bit"), str(data[name]))
    if data.get("gpu"):
        from trainer.planning.hardware import lookup_gpu

        gpu = lookup_gpu(data["gpu"])
        slots.set("gpu", gpu.name if gpu else data["gpu"], data["gpu"])
    for name in ("dataset_path", "eval_path", "output_dir", "epochs", "learning_rate", "batch_size",
                 "gradient_accumulation_steps", "lora_r", "lora_alpha", "max_seq_length", "device_memory_gb", "device"):
        if data.get(name) not in (None, ""):
            value = data[name]
            if name == "epochs" and float(value) == int(value):
                value = int(value)
            slots.set(name, value, str(data[name]))
    if data.get("openai_style_defaults"):
        slots.set("openai_style", True, "OpenAI-style defaults")
    slots.methods_mentioned = [m.lower() for m in data.get("methods_mentioned") or []]
    if slots.values.get("method") and slots.values["method"] not in slots.methods_mentioned:
        slots.methods_mentioned.insert(0, slots.values["method"])
    return slots


def _slot_problems(slots: Slots) -> list[str]:
    """The schema problems the slots would cause, formatted for the LLM's retry."""
    from trainer.planning.config_io import parse_config_lenient

    data, _, _ = _config_data(slots)
    _, problems = parse_config_lenient(data)
    return [f"{p.get('loc', '')}: {p['message']}" for p in problems]


def extract_with_llm(text: str, engine) -> Slots:
    """Structured output, validated like a config file; one retry that carries the problems."""
    from langchain_core.messages import AIMessage, HumanMessage

    from assistant.engines.prompts import CONFIG_PROMPT

    messages = CONFIG_PROMPT.format_messages(request=text)
    last_problems: list[str] = []
    for attempt in range(2):
        try:
            filled = engine.structured(messages, RequestSlots)
            slots = slots_from_model(filled, text)
            problems = _slot_problems(slots)
            reply = filled.model_dump_json(exclude_none=True)
        except ValueError as exc:  # pydantic ValidationError and unparsable JSON are ValueErrors
            problems, reply = [str(exc).splitlines()[0]], "(invalid output)"
        if not problems:
            return slots
        last_problems = problems
        if attempt == 0:
            messages = list(messages) + [
                AIMessage(reply),
                HumanMessage("Your answer has these problems:\n" + "\n".join(f"- {p}" for p in problems)
                             + "\nFix them and answer again with the same fields."),
            ]
    raise ValueError("; ".join(last_problems))


def config_from_text(text: str, engine=None) -> dict:
    """A fine-tuning request in Chinese or English -> the `tunepilot config --from-text --json` dict.

    `engine` is an engine name ("openai", "local") or an engine object; None or "extractive" uses
    the deterministic parser only.
    """
    if not text or not text.strip():
        raise UserError('the request is empty: describe the run, e.g. "fine-tune gemma-3-270m on data.jsonl with LoRA, 3 epochs"')
    notes: list[dict] = []
    if engine is not None and not hasattr(engine, "structured"):
        from assistant.engines import EngineUnavailable, get_engine

        try:
            engine = get_engine(engine) if engine != "extractive" else None
        except EngineUnavailable as exc:
            notes.append(_fallback_note(str(exc)))
            engine = None
    if engine is not None and getattr(engine, "uses_llm", False):
        from assistant.engines import EngineUnavailable

        try:
            slots = extract_with_llm(text, engine)
            return build_result(slots, text, origin=f"read by the {engine.name} engine from your request")
        except (EngineUnavailable, ValueError) as exc:
            notes.append(_fallback_note(str(exc)))
    return build_result(parse_slots(text), text, notes=notes)


def _fallback_note(reason: str) -> dict:
    return {"rule_id": "request.llm-fallback", "severity": "warning", "field": "",
            "message": f"The language-model extraction failed ({reason}); the request was read by the deterministic parser.",
            "source": "request", "heading": ""}


__all__ = ["RequestSlots", "build_result", "canonical_model", "config_from_text", "detect_training_intent",
           "extract_with_llm", "slots_from_model"]
