"""Config from conversation: "fine-tune X on my data with LoRA on a 24G card" -> a validated config.

`config_from_text(text_or_turns)` returns the `tunepilot config --from-text --json` shape
(`config`, `validation`, `memory_estimate`, `explanations`) plus what the planner adds (see
`assistant.draft`): `understood` (each value with its span), `unread`, `missing`, `changes`,
`fit`, `target`, `this_machine` and a short `reply`.

How it is built, per turn of the conversation:
1. the slots are read: with an LLM engine by structured output (a pydantic schema through
   LangChain), checked like a config file and retried once with the problems spelled out; without
   one, or when the LLM fails, by the deterministic reader `assistant.understand`;
2. the turn edits the conversation's `assistant.draft.Draft` (questions in between leave it alone,
   "start over" resets it), and the draft is planned (`assistant.plan`: defaults with reasons, from
   the rules and the data, for the target GPU), fitted (`assistant.fit`: the free knobs until the
   memory estimate fits) and validated on that target (`trainer.planning.findings.check_config`);
3. requests that contradict themselves ("QLoRA full fine-tune", "3 epochs, epochs=5") get a
   validation error that asks which one was meant; the LLM never bypasses steps 2 and 3.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from assistant.slots import Slots, canonical_model, parse_slots
from assistant.understand import Understanding, detect_training_intent, understand
from tunepilot.core.errors import UserError

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


# ------------------------------------------------------------------------------- slots -> config

def build_result(slots: Slots, text: str, origin: str = "from your request", notes: list[dict] | None = None) -> dict:
    """Slots (the LLM's or `parse_slots`') -> the `config --from-text --json` dict, through the planner."""
    from assistant.draft import Draft

    result = Draft().update(text, understood=understanding_from_slots(slots, text), origin=origin)
    result["validation"]["warnings"] = list(notes or []) + result["validation"]["warnings"]
    return result


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
    from assistant.plan import plan
    from trainer.planning.config_io import parse_config_lenient

    values = {f"{sec}.{key}": slots.values[name] for name, (sec, key) in SLOT_FIELDS.items() if name in slots.values}
    _, problems = parse_config_lenient(plan(values).data)
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


def understanding_from_slots(slots: Slots, text: str) -> Understanding:
    """An LLM's slots (`slots_from_model`) as an Understanding, each value with the span of its evidence."""
    from assistant.understand import Slot, Understanding

    u = Understanding(text=text, methods_mentioned=list(slots.methods_mentioned),
                      openai_style=bool(slots.values.get("openai_style")))
    for name, value in slots.values.items():
        if name not in SLOT_FIELDS:
            continue
        section, key = SLOT_FIELDS[name]
        evidence = str(slots.evidence.get(name, value))
        start = text.find(evidence)
        span = (start, start + len(evidence)) if start >= 0 else (-1, -1)
        u.slots.append(Slot(f"{section}.{key}", value, span, evidence))
    return u


def resolve_engine(engine, notes: list[dict]):
    """An engine name or object -> an LLM engine object, or None for the deterministic reader
    (an unavailable engine adds a fallback note)."""
    if engine is None or engine == "extractive":
        return None
    if not hasattr(engine, "structured"):
        from assistant.engines import EngineUnavailable, get_engine

        try:
            engine = get_engine(engine)
        except EngineUnavailable as exc:
            notes.append(_fallback_note(str(exc)))
            return None
    return engine if getattr(engine, "uses_llm", False) else None


def update_draft(draft, text: str, engine=None, notes: list[dict] | None = None) -> dict:
    """One edit of the draft: the LLM fills the slots when an engine is given (falling back to the
    reader), then the same plan / fit / validation runs on them."""
    notes = list(notes or [])
    understood, origin = None, None
    if engine is not None:
        from assistant.engines import EngineUnavailable

        try:
            understood = understanding_from_slots(extract_with_llm(text, engine), text)
            origin = f"read by the {engine.name} engine from your request"
        except (EngineUnavailable, ValueError) as exc:
            notes.append(_fallback_note(str(exc)))
    result = draft.update(text, understood=understood, origin=origin or "from your request")
    if notes:
        result["validation"]["warnings"] = notes + result["validation"]["warnings"]
    return result


RESET_REPLY = {"en": "Started over: the draft config is cleared. Describe the run (model and dataset).",
               "zh": "已重新开始：草稿配置已清空。请描述训练任务（模型和数据集）。"}


def converse(draft, text: str, engine=None) -> tuple[str, dict | None]:
    """One chat message: ("edit", result) when it makes or edits the draft, ("question", None) when
    it should be answered from the docs (the draft stays), ("reset", None) after "start over"."""
    kind = draft.classify(text)
    if kind == "reset":
        draft.reset()
        if not understand(text).slots:
            return "reset", None
    elif kind == "question":
        draft.skip()
        return "question", None
    notes: list[dict] = []
    return "edit", update_draft(draft, text, resolve_engine(engine, notes), notes)


def config_from_text(text: str | list[str], engine=None) -> dict:
    """A fine-tuning request in Chinese or English -> the `tunepilot config --from-text --json` dict.

    `text` is one message or the turns of a conversation (later turns edit the draft the earlier
    ones made; questions in between are skipped; "start over" resets). `engine` is an engine name
    ("openai", "local") or an engine object; None or "extractive" uses the deterministic reader
    (`assistant.understand`) only. The result is today's shape (`config`, `validation`,
    `memory_estimate`, `explanations`) plus `understood`, `unread`, `missing`, `changes`, `fit`,
    `target`, `this_machine` and `reply` (see `assistant.draft`).
    """
    from assistant.draft import Draft

    turns = [text] if isinstance(text, str) else [t for t in text if t is not None]
    if not any(t.strip() for t in turns):
        raise UserError('the request is empty: describe the run, e.g. "fine-tune gemma-3-270m on data.jsonl with LoRA, 3 epochs"')
    notes: list[dict] = []
    engine = resolve_engine(engine, notes)
    draft = Draft()
    for turn in (t for t in turns if t.strip()):
        kind = draft.classify(turn) if draft.active else "edit"
        if kind == "question":
            draft.skip()
            continue  # answered elsewhere (the chat); the draft stays as it is
        if kind == "reset" and not understand(turn).slots:
            draft.reset()
            continue
        update_draft(draft, turn, engine, notes)
        notes = []  # a fallback note is shown once, on the turn it happened
    if draft.result is None:  # only "start over": an empty draft
        draft.update("")
    return draft.result


def _fallback_note(reason: str) -> dict:
    return {"rule_id": "request.llm-fallback", "severity": "warning", "field": "",
            "message": f"The language-model extraction failed ({reason}); the request was read by the deterministic parser.",
            "source": "request", "heading": ""}


__all__ = ["RequestSlots", "build_result", "canonical_model", "config_from_text", "detect_training_intent",
           "converse", "extract_with_llm", "resolve_engine", "slots_from_model", "understanding_from_slots", "update_draft"]
