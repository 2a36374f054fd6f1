"""Slots by name: a fine-tuning request in Chinese or English -> the LLM schema's slot names.

"用 LoRA 在单卡 3090 上微调 qwen2.5 7b，数据 ./data/zh.jsonl，3 轮，学习率 2×10^-4" and
"fine-tune llama 3 8b on data/train.jsonl with QLoRA, lr 1e-5, batch size 4 on a 24G card" both
become the same kind of `Slots`. The reading is `assistant.understand`'s (regular expressions over
an NFKC-normalised copy, from `assistant.lexicon`); this module is its view by slot name, used for
intent detection, the LLM's structured output and the older benchmarks. Each slot keeps the words
it was read from, for explanations.

Slot names (also the keys of the benchmark's gold file): base_model, method, dataset_path,
eval_path, output_dir, epochs, learning_rate, batch_size, gradient_accumulation_steps, lora_r,
lora_alpha, max_seq_length, optimizer, gpu, device_memory_gb, device, openai_style.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from assistant.lexicon import _MODEL_FAMILIES, canonical_model, cn_number, parse_float  # noqa: F401  (the slot API)


@dataclass
class Slots:
    values: dict = field(default_factory=dict)  # slot -> value
    evidence: dict = field(default_factory=dict)  # slot -> the words it was read from
    methods_mentioned: list[str] = field(default_factory=list)  # every method named (for conflicts)

    def set(self, name: str, value, evidence: str) -> None:
        if name not in self.values and value is not None:
            self.values[name] = value
            self.evidence[name] = evidence.strip()


# Old slot names (the LLM schema's and the benchmark's) -> config fields of `assistant.understand`.
SLOT_FIELD_NAMES = {
    "base_model": "model.base_model", "method": "method.type", "dataset_path": "dataset.path",
    "eval_path": "dataset.eval_path", "max_seq_length": "dataset.max_seq_length", "output_dir": "saving.output_dir",
    "epochs": "training.epochs", "batch_size": "training.batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps", "device": "training.device",
    "learning_rate": "optimizer.learning_rate", "optimizer": "optimizer.type", "lora_r": "method.lora_r",
    "lora_alpha": "method.lora_alpha", "gpu": "hardware.gpu", "device_memory_gb": "hardware.device_memory_gb",
}


def parse_slots(text: str) -> Slots:
    """Read every slot the request states, by slot name; slots it does not state are absent.

    The reading is `assistant.understand`'s (the one reader); this view names the slots as the LLM
    schema does, and lists the other fields it read (dropout, warmup, ...) under their config names.
    """
    from assistant.understand import understand

    u = understand(text)
    by_field = {v: k for k, v in SLOT_FIELD_NAMES.items()}
    slots = Slots(methods_mentioned=list(u.methods_mentioned))
    for s in u.slots:
        slots.set(by_field.get(s.field, s.field), s.value, s.text)
    if u.openai_style:
        slots.set("openai_style", True, "OpenAI-style defaults")
    return slots
